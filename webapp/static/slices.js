// On-demand time slices on the run page (server side: webapp/slices.py).
//
// - The slice form (form.ow-slice-form) is posted as JSON to the slices API,
//   with the session's CSRF token in the X-CSRF-Token header. A refused
//   request (400) shows each field's error next to that field; an accepted one
//   opens the slice's permalink through overwatch.js's navigation (a click on a
//   same-site link: no page reload), keeping the current group.
// - A moving window (section.ow-slice-shown[data-slice-window]) asks the API
//   every few seconds which slice the window names now; when a new snapshot
//   changed it, every drawing's data-src gets the new slice id, each figure's
//   annotation (info lines and decorations, drawn by plugin_view.js) is
//   replaced, and overwatch.js is asked to redraw (event "ow:redraw"): only
//   drawings whose URL changed are fetched and drawn again.
//
// Pages are swapped without reloads, so a MutationObserver on <main> starts the
// polling for each new #ow-page and stops it when the page is gone.

const CSRF_HEADER = 'X-CSRF-Token';
let pollTimer = null;

function formBody(form, submitter) {
  const body = { options: {} };
  for (const [key, value] of new FormData(form)) {
    if (key === 'csrf_token') continue;
    if (key.startsWith('options.')) body.options[key.slice('options.'.length)] = value;
    else if (key === 'follow') body.follow = true;
    else body[key] = value;
  }
  if (submitter && submitter.name === 'preset') body.preset = submitter.value;
  return body;
}

function showErrors(form, fields, message) {
  form.querySelectorAll('.ow-field-error').forEach((span) => { span.textContent = ''; });
  form.querySelectorAll('[aria-invalid]').forEach((input) => input.removeAttribute('aria-invalid'));
  const unplaced = [];
  for (const [field, why] of Object.entries(fields || {})) {
    const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
    if (input) input.setAttribute('aria-invalid', 'true');
    const span = form.querySelector(`.ow-field-error[data-field="${CSS.escape(field)}"]`);
    if (span) span.textContent = why;
    else unplaced.push(`${field}: ${why}`);
  }
  const general = form.querySelector('.ow-field-error[data-field="_error"]');
  if (general) {
    general.textContent = unplaced.length ? unplaced.join('; ') : (fields && Object.keys(fields).length ? '' : message);
  }
}

// Follow a same-site URL the way a click on a link does (overwatch.js handles the click).
function openLink(href) {
  const page = document.getElementById('ow-page') || document.body;
  const link = document.createElement('a');
  link.href = href;
  link.hidden = true;
  page.appendChild(link);
  link.click();
  link.remove();
}

document.addEventListener('submit', async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains('ow-slice-form')) return;
  event.preventDefault();
  const body = formBody(form, event.submitter);
  const token = (form.querySelector('input[name=csrf_token]') || {}).value || '';
  form.classList.add('ow-busy');
  let response;
  let data;
  try {
    response = await fetch(form.action, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', [CSRF_HEADER]: token },
      body: JSON.stringify(body),
    });
    data = await response.json().catch(() => ({ error: response.statusText }));
  } catch (error) {
    showErrors(form, {}, 'cannot reach the server: ' + error);
    return;
  } finally {
    form.classList.remove('ow-busy');
  }
  if (response.status === 401) {
    location.assign(document.body.dataset.login + '?next=' + encodeURIComponent(location.pathname + location.search));
    return;
  }
  if (!response.ok) {
    showErrors(form, data.fields, data.error || response.statusText);
    return;
  }
  showErrors(form, {}, '');
  const target = new URL(data.permalink, location.href);
  const group = new URLSearchParams(location.search).get('group');
  if (group) target.searchParams.set('group', group);
  openLink(target.pathname + target.search);
});

// --------------------------------------------------------------------------- moving windows

function utc(seconds) {
  return new Date(seconds * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

function figurePath(figure) {
  const caption = figure.querySelector('figcaption a');
  return caption ? caption.textContent.trim() : null;
}

function replaceNote(figure, note) {
  const old = figure.querySelector('.ow-annotation');
  if (old) old.remove();
  if (!note || !((note.info || []).length || (note.decorations || []).length)) return;
  const box = document.createElement('div');
  box.className = 'ow-annotation';
  box.dataset.decorations = JSON.stringify(note.decorations || []);
  if ((note.info || []).length) {
    const list = document.createElement('ul');
    list.className = 'ow-annotation-info';
    for (const line of note.info) {
      const item = document.createElement('li');
      item.textContent = line;
      list.appendChild(item);
    }
    box.appendChild(list);
  }
  figure.appendChild(box);
}

function showSlice(page, section, data) {
  const interval = data.interval || {};
  const text = section.querySelector('.ow-slice-interval');
  if (text) {
    const from = interval.from_run_start ? 'run start' : utc(interval.start);
    text.textContent = `${from} → ${utc(interval.end)} (minute ${interval.start_minute.toFixed(2)} to ${interval.end_minute.toFixed(2)})`;
  }
  const events = section.querySelector('.ow-slice-events');
  if (events) events.textContent = Math.round(data.n_events || 0).toString();
  const badge = section.querySelector('.ow-slice-quality .ow-badge');
  if (badge && data.quality) {
    badge.textContent = data.quality;
    badge.dataset.quality = data.quality;
    badge.className = `ow-badge ow-q ow-q-${data.quality.toLowerCase()}`;
  }
  const annotations = data.annotations || {};
  page.querySelectorAll('figure.ow-figure').forEach((figure) => {
    const path = figurePath(figure);
    if (path !== null) replaceNote(figure, annotations[path]);
  });
}

async function follow(page, section) {
  if (!page.isConnected) {
    clearInterval(pollTimer);
    pollTimer = null;
    return;
  }
  if (section.dataset.busy) return;
  section.dataset.busy = '1';
  try {
    const response = await fetch(section.dataset.sliceResolve, {
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
    if (!response.ok) return; // keep showing the last good window
    const data = await response.json();
    const old = section.dataset.sliceId;
    if (!data.id || data.id === old || !page.isConnected) return;
    section.dataset.sliceId = data.id;
    page.querySelectorAll('.ow-drawing[data-src]').forEach((div) => {
      const url = new URL(div.dataset.src, location.href);
      if (url.searchParams.get('slice') !== old) return;
      url.searchParams.set('slice', data.id);
      div.dataset.src = url.pathname + url.search;
    });
    showSlice(page, section, data);
    document.dispatchEvent(new CustomEvent('ow:redraw'));
  } catch (error) {
    console.warn('Overwatch: moving window not updated:', error);
  } finally {
    delete section.dataset.busy;
  }
}

function initPage(page) {
  clearInterval(pollTimer);
  pollTimer = null;
  const section = page && page.querySelector('.ow-slice-shown[data-slice-window]');
  if (!section) return;
  const seconds = Math.max(1, Number(section.dataset.slicePoll || 10));
  pollTimer = setInterval(() => follow(page, section), seconds * 1000);
}

const main = document.getElementById('ow-main');
if (main) {
  new MutationObserver(() => initPage(document.getElementById('ow-page'))).observe(main, { childList: true });
}
initPage(document.getElementById('ow-page'));

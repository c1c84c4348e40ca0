// Reference comparison on the run page (server side: webapp/reference.py).
//
// When the page compares with a reference run (the #ow-reference summary is present):
// - the compare API fills the summary table and puts a status badge on every figure;
// - with sort=worst the figures of the group are reordered, worst first;
// - every <div class="ow-overlay" data-overlay="URL"> is drawn with JSROOT in the overlay's
//   mode (chosen per class by webapp/reference.py): "lines" (1D: data and the reference
//   scaled to it in one pad, the reference in red; the ratio in a pad below that shares
//   the main pad's x axis, range and log state, also after a zoom), "ratio-map" (TH2: the
//   data map and the ratio map on a diverging palette beside it), "side-by-side"
//   (TProfile2D: data and reference maps on one z range), "projections" (3D: the x, y, z
//   projections each as "lines", with the plugin's log axes of data-opt-x/-y/-z);
// - the summary says which views are compared (and when the reference is the run itself).
// The reference is view state kept in the URL (ref=, test=, threshold=, sort=): links and
// GET forms of the same subsystem that do not carry it get it added, so changing group,
// slice or draw option keeps the comparison. Pages are swapped without reloads by
// overwatch.js; a MutationObserver on <main> notices each new #ow-page.

const REFERENCE_PARAMS = ['ref', 'test', 'threshold', 'sort'];
const STATUSES = ['fail', 'skipped', 'null', 'success'];

let jsrootPromise = null;
let refreshTimer = null;
let generation = 0;

function loadJsroot() {
  if (!jsrootPromise) {
    // The same module URL as overwatch.js: the browser shares one JSROOT instance.
    jsrootPromise = import(document.body.dataset.jsroot).then((J) => {
      J.settings.ZoomWheel = false;
      return J;
    });
  }
  return jsrootPromise;
}

function referenceParams() {
  const current = new URLSearchParams(location.search);
  return REFERENCE_PARAMS.filter((key) => current.has(key)).map((key) => [key, current.get(key)]);
}

// Per-histogram draw options (opt.<path>=, webapp/pages.py) are view state too.
function carriedParams() {
  const own = [...new URLSearchParams(location.search)].filter(([key, value]) => key.startsWith('opt.') && value);
  return [...referenceParams(), ...own];
}

// Keep the comparison and the histograms' own draw options when following the page's own
// links and forms (the run page: its reference form names the subsystem's base; a histogram
// page: its way back to the run page).
function carryParams(page) {
  const form = page.querySelector('.ow-reference-form');
  const back = page.querySelector('.ow-crumbs a:nth-of-type(2)');
  if (!form && !back) return;
  const base = new URL(form ? form.getAttribute('action') : back.getAttribute('href'), location.href).pathname;
  const params = carriedParams();
  if (!params.length) return;
  const ours = (url) => url.origin === location.origin && (url.pathname === base || url.pathname.startsWith(base + '/'));
  page.querySelectorAll('a[href]').forEach((link) => {
    const url = new URL(link.getAttribute('href'), location.href);
    if (!ours(url) || link.hasAttribute('download')) return;
    let changed = false;
    for (const [key, value] of params) {
      if (!url.searchParams.has(key)) {
        url.searchParams.set(key, value);
        changed = true;
      }
    }
    if (changed) link.setAttribute('href', url.pathname + url.search + url.hash);
  });
  page.querySelectorAll('form').forEach((other) => {
    if (other === form || (other.method || 'get').toLowerCase() !== 'get') return;
    if (!ours(new URL(other.getAttribute('action') || location.href, location.href))) return;
    for (const [key, value] of params) {
      if (other.elements.namedItem(key)) continue;
      const input = document.createElement('input');
      Object.assign(input, { type: 'hidden', name: key, value });
      other.append(input);
    }
  });
}

async function fetchJson(url) {
  const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (response.status === 401) {
    location.assign(document.body.dataset.login + '?next=' + encodeURIComponent(location.pathname + location.search));
    throw new Error('signed out');
  }
  const text = await response.text();
  if (!response.ok) {
    let message = response.statusText;
    try { message = JSON.parse(text).error || message; } catch (error) { /* not JSON */ }
    throw new Error(message);
  }
  return { text, etag: response.headers.get('ETag') || '' };
}

function formatNumber(value) {
  if (value === null || value === undefined) return '–';
  if (value === 0) return '0';
  return Math.abs(value) < 1e-3 || Math.abs(value) >= 1e4 ? value.toExponential(2) : value.toPrecision(3);
}

function badge(status) {
  const span = document.createElement('span');
  span.className = `ow-cmp ow-cmp-${status}`;
  span.textContent = status;
  return span;
}

function histogramLink(summary, path) {
  const base = summary.dataset.pageBase + '/hist/';
  const url = new URL(base + path.split('/').map(encodeURIComponent).join('/'), location.href);
  for (const [key, value] of referenceParams()) url.searchParams.set(key, value);
  return url.pathname + url.search;
}

function renderSummary(summary, answer) {
  const counts = summary.querySelector('[data-counts]');
  counts.textContent = '';
  for (const status of STATUSES) {
    const n = answer.counts[status] || 0;
    if (!n) continue;
    const item = badge(status);
    item.textContent = `${n} ${status}`;
    counts.append(item);
  }
  const body = summary.querySelector('tbody');
  body.textContent = '';
  for (const result of answer.results) {
    const row = body.insertRow();
    row.className = `ow-cmp-row-${result.status}`;
    row.dataset.path = result.path;
    row.insertCell().append(badge(result.status));
    const link = document.createElement('a');
    link.href = histogramLink(summary, result.path);
    link.textContent = result.path;
    row.insertCell().append(link);
    row.insertCell().textContent = formatNumber(result.pvalue);
    row.insertCell().textContent = result.statistic === null ? '–' : `${formatNumber(result.statistic)} / ${result.ndf ?? '–'}`;
    const reason = row.insertCell();
    reason.textContent = result.reason ? result.reason.replaceAll('_', ' ') : '';
    if (result.detail) reason.title = result.detail;
  }
}

function putBadges(page, byPath) {
  page.querySelectorAll('.ow-overlay[data-path]').forEach((div) => {
    const caption = div.closest('.ow-figure')?.querySelector('figcaption');
    if (!caption) return;
    caption.querySelectorAll('.ow-cmp').forEach((old) => old.remove());
    const result = byPath.get(div.dataset.path);
    if (!result) return;
    const mark = badge(result.status);
    mark.title = result.pvalue === null ? (result.reason || '') : `p = ${formatNumber(result.pvalue)}`;
    caption.prepend(mark);
  });
}

// Compared figures worst first; figures not compared (a plugin's derived histograms) after
// them, in their own order (the sort is stable).
function reorder(page, answer) {
  const rank = new Map(answer.results.map((result, index) => [result.path, index]));
  page.querySelectorAll('.ow-grid').forEach((grid) => {
    const figures = [...grid.querySelectorAll(':scope > .ow-figure')];
    const position = (figure) => {
      const overlay = figure.querySelector('.ow-overlay[data-path]');
      return (overlay && rank.get(overlay.dataset.path)) ?? rank.size;
    };
    figures.sort((a, b) => position(a) - position(b)).forEach((figure) => grid.append(figure));
  });
}

function showError(div, message) {
  div.classList.add('ow-drawing-error');
  div.querySelectorAll('.ow-overlay-main, .ow-overlay-ratio').forEach((pad) => {
    pad.querySelectorAll('.ow-pad').forEach((inner) => loadJsroot().then((J) => J.cleanup(inner)));
    pad.textContent = '';
  });
  div.querySelector('.ow-overlay-main').textContent = message;
}

// A pad of its own inside a row (main or ratio) of the overlay.
function newPad(row, name) {
  const pad = document.createElement('div');
  pad.className = 'ow-pad';
  pad.dataset.pad = name;
  row.append(pad);
  return pad;
}

const logFlags = (fp) => ['logx'].filter((axis) => fp && fp[axis]).join(';');

// The ratio pad follows the main pad's x axis: its log state and its range, now and after
// every zoom or unzoom of the main pad (the two share one x axis).
async function shareX(J, mainPad, ratioPad, ratio) {
  const fp = J.getElementMainPainter(mainPad)?.getFramePainter();
  const follow = async () => {
    let rp = J.getElementMainPainter(ratioPad);
    let rfp = rp?.getFramePainter();
    if (!rfp || Boolean(rfp.logx) !== Boolean(fp.logx)) {
      J.cleanup(ratioPad);
      ratioPad.textContent = '';
      rp = await J.draw(ratioPad, ratio, ['E', logFlags(fp)].filter(Boolean).join(';'));
      rfp = rp.getFramePainter();
    }
    if (Math.abs(rfp.scale_xmin - fp.scale_xmin) > 1e-9 * Math.abs(fp.scale_xmax - fp.scale_xmin)
        || Math.abs(rfp.scale_xmax - fp.scale_xmax) > 1e-9 * Math.abs(fp.scale_xmax - fp.scale_xmin)) {
      await rfp.zoom(fp.scale_xmin, fp.scale_xmax);
    }
  };
  await follow();
  if (!fp || fp.owShared) return;
  fp.owShared = true;
  for (const name of ['zoom', 'unzoom']) {
    const original = fp[name].bind(fp);
    fp[name] = async (...args) => {
      const changed = await original(...args);
      if (ratioPad.isConnected) await follow();
      return changed;
    };
  }
}

// 1D: data with its own option (the plugin's log axes included), the reference as a line
// over it, the ratio below on the same x axis.
async function drawLines(J, [mainPad, ratioPad], parts, option) {
  // The y range holds both: JSROOT sizes it to the data alone, and a reference above it
  // ran out of the frame.
  const top = (h) => Math.max(...h.fArray.slice(1, -1));
  if (parts.data.fMaximum === -1111 && top(parts.reference) > top(parts.data)) {
    parts.data.fMaximum = top(parts.reference) + 0.05 * Math.abs(top(parts.reference));
  }
  await J.draw(mainPad, parts.data, option);
  await J.draw(mainPad, parts.reference, 'same hist');
  await shareX(J, mainPad, ratioPad, parts.ratio);
}

async function drawModes(J, div, overlay) {
  const main = div.querySelector('.ow-overlay-main');
  const ratio = div.querySelector('.ow-overlay-ratio');
  const option = div.dataset.opt || '';
  div.dataset.mode = overlay.mode;
  const padsOf = (name) => [newPad(main, name), newPad(ratio, name)];
  if (overlay.mode === 'lines') {
    await drawLines(J, padsOf('data'), overlay, option);
  } else if (overlay.mode === 'projections') {
    // Every pad first, then the drawings: a pad drawn before its neighbours exist is drawn
    // wide, then squeezed, and its text shrinks with it.
    const pads = overlay.projections.map((projection) => padsOf(projection.axis));
    for (const [index, projection] of overlay.projections.entries()) {
      // Each projection keeps the plugin's log axes (data-opt-x/-y/-z, webapp/pages.py).
      const own = div.dataset[`opt${projection.axis.toUpperCase()}`] || '';
      await drawLines(J, pads[index], projection, own);
    }
  } else if (overlay.mode === 'ratio-map') {
    await J.draw(newPad(main, 'data'), overlay.data, option || 'colz');
    await J.draw(newPad(ratio, 'ratio'), overlay.ratio, `colz;nostat;pal${overlay.palette}`);
  } else { // side-by-side: data and reference on one z range
    const low = Math.min(...[overlay.data, overlay.reference].map((h) => Math.min(...h.fArray)));
    const high = Math.max(...[overlay.data, overlay.reference].map((h) => Math.max(...h.fArray)));
    for (const h of [overlay.data, overlay.reference]) {
      h.fMinimum = low;
      h.fMaximum = high;
    }
    await J.draw(newPad(main, 'data'), overlay.data, option || 'colz');
    await J.draw(newPad(ratio, 'reference'), overlay.reference, 'colz');
  }
}

async function drawOverlay(J, div) {
  let fetched;
  try {
    fetched = await fetchJson(div.dataset.overlay);
  } catch (error) {
    showError(div, String(error.message || error));
    return;
  }
  if (div.dataset.etag === fetched.etag && div.querySelector('.ow-overlay-ratio svg')) return;
  if (!div.isConnected) return;
  const main = div.querySelector('.ow-overlay-main');
  const ratio = div.querySelector('.ow-overlay-ratio');
  try {
    const overlay = J.parse(fetched.text);
    div.querySelectorAll('.ow-pad').forEach((pad) => J.cleanup(pad));
    main.textContent = '';
    ratio.textContent = '';
    div.classList.remove('ow-drawing-error');
    div.classList.toggle('ow-overlay-beside', overlay.mode === 'ratio-map' || overlay.mode === 'side-by-side');
    div.classList.toggle('ow-overlay-columns', overlay.mode === 'projections');
    await drawModes(J, div, overlay);
    div.dataset.etag = fetched.etag;
    div.classList.add('ow-overlay-drawn');
  } catch (error) {
    showError(div, 'JSROOT could not draw this comparison: ' + error);
  }
}

// Which views the comparison is of (the page's, or the whole run for an on-demand slice),
// and a word when the reference is the run itself.
function describeComparison(summary, answer) {
  let note = summary.querySelector('.ow-reference-of');
  if (!note) {
    note = document.createElement('p');
    note.className = 'ow-reference-of ow-dim';
    summary.querySelector('summary').after(note);
  }
  const shown = new URLSearchParams(location.search).get('slice') || 'cumulative';
  const of = answer.slice === 'latest' ? 'the latest slice' : 'the whole run';
  let text = `Compared: ${of} of run ${answer.run} with the whole run of run ${answer.reference}.`;
  if (!['cumulative', 'latest'].includes(shown)) {
    text += ' The page shows an on-demand slice; the comparison is of the whole run.';
  }
  if (answer.reference === answer.run) {
    text += answer.slice === 'latest'
      ? ` The reference is run ${answer.run} itself: its latest slice against its whole run.`
      : ` The reference is run ${answer.run} itself: every histogram agrees with itself.`;
    note.classList.add('ow-reference-self');
  } else {
    note.classList.remove('ow-reference-self');
  }
  note.textContent = text;
}

async function compareAndDraw(page, summary, token) {
  let answer;
  try {
    answer = JSON.parse((await fetchJson(summary.dataset.compare)).text);
  } catch (error) {
    summary.querySelector('[data-counts]').textContent = 'comparison failed: ' + (error.message || error);
    summary.classList.add('ow-reference-failed');
    return;
  }
  if (token !== generation || !page.isConnected) return;
  renderSummary(summary, answer);
  describeComparison(summary, answer);
  const byPath = new Map(answer.results.map((result) => [result.path, result]));
  putBadges(page, byPath);
  if (summary.dataset.sort === 'worst') reorder(page, answer);
  const divs = [...page.querySelectorAll('.ow-overlay[data-overlay]')];
  if (divs.length) {
    let J;
    try {
      J = await loadJsroot();
    } catch (error) {
      divs.forEach((div) => showError(div, 'JSROOT did not load: ' + error));
      return;
    }
    for (const div of divs) { // one after the other: the first ones show quickly
      if (token !== generation || !page.isConnected) return;
      await drawOverlay(J, div);
    }
  }
  page.dataset.referenceDrawn = 'done';
}

function init(page) {
  clearInterval(refreshTimer);
  refreshTimer = null;
  const token = ++generation;
  if (!page) return;
  carryParams(page);
  const summary = page.querySelector('#ow-reference');
  if (!summary) return;
  compareAndDraw(page, summary, token);
  const seconds = Number(page.dataset.refreshDrawings || 0);
  if (seconds > 0) {
    refreshTimer = setInterval(() => compareAndDraw(page, summary, token), seconds * 1000);
  }
}

let shown = document.getElementById('ow-page');
init(shown);
new MutationObserver(() => {
  const page = document.getElementById('ow-page');
  if (page !== shown) {
    if (shown && jsrootPromise) {
      const old = shown;
      jsrootPromise.then((J) => old.querySelectorAll('.ow-overlay .ow-pad').forEach((pad) => J.cleanup(pad)));
    }
    shown = page;
    init(page);
  }
}).observe(document.getElementById('ow-main') || document.body, { childList: true });

let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (!jsrootPromise) return;
    jsrootPromise.then((J) => document.querySelectorAll('.ow-overlay-drawn .ow-pad').forEach((pad) => J.resize(pad)));
  }, 200);
});

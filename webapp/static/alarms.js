// The alarms page: acknowledge an alarm without leaving the page.
//
// Each "Acknowledge" button sits in a plain POST form (hidden CSRF field), which
// works without scripts. With scripts, the form's data-api URL (the JSON API,
// POST /api/alarms/<id>/ack) is called with the CSRF token in the X-CSRF-Token
// header, and the row is updated in place with who acknowledged it and when.

function utc(seconds) {
  return new Date(seconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

async function acknowledge(form) {
  const button = form.querySelector('button');
  const token = form.querySelector('input[name=csrf_token]');
  if (button) button.disabled = true;
  let response;
  try {
    response = await fetch(form.dataset.api, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json', 'X-CSRF-Token': token ? token.value : '' },
    });
  } catch (error) {
    form.submit(); // let the plain form try, and the browser show what is wrong
    return;
  }
  const body = await response.json().catch(() => ({}));
  const cell = form.closest('.ow-ack-cell');
  if (!response.ok || !cell) {
    if (button) button.disabled = false;
    const message = document.createElement('div');
    message.className = 'ow-bad-text';
    message.textContent = body.error || `acknowledging failed (${response.status})`;
    form.after(message);
    return;
  }
  const row = form.closest('tr');
  if (row) row.classList.add('ow-alarm-acked');
  cell.textContent = '';
  const who = document.createElement('span');
  who.className = 'ow-acked';
  who.append('by ');
  const name = document.createElement('strong');
  name.textContent = body.acknowledged_by || '';
  who.append(name);
  const when = document.createElement('div');
  when.className = 'ow-dim';
  when.textContent = body.acknowledged_at ? utc(body.acknowledged_at) : '';
  cell.append(who, when);
}

export function initPage(page) {
  page.querySelectorAll('form.ow-ack-form[data-api]').forEach((form) => {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      acknowledge(form);
    });
  });
}

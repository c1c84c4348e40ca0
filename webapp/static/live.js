// Live pages: one event stream (GET /api/events) for the whole visit.
//
// - A new snapshot of what the page shows (#ow-page data-live-run and
//   data-live-subsystems) redraws its drawings in place (overwatch.js keeps the
//   user's zoom, log scales and draw option) and refreshes the text marked
//   data-live-id (counts, badges, check results) and the page title from the
//   server's current page. Pages without drawings (data-live-any="TYPES": run
//   list, alarms, status) are reloaded in place when such an event comes.
// - An open, unacknowledged alarm shows a banner on every page (acknowledge from
//   it; a sound, mutable and remembered; a browser notification when allowed;
//   the count in the title).
// - The server or the database out of reach: a banner says so, the page keeps
//   its content marked stale, and everything recovers by itself on reconnection.
//   A page whose snapshots stop coming within the expected cadence is marked stale.
// - Without a stream (an old browser, the server's limit reached), or while no
//   snapshot event came for two minutes, the pages' own polling (data-refresh-*)
//   goes on; while pushes come it stands by (body data-pushes="on").

const body = document.body;
const STREAM_SILENT_MS = 25000; // health events come every 10 s: silence longer is trouble
const PAGE_REFRESH_MS = 2000; // pages reloaded in place at most this often
const STALE_MIN_MS = 20000;
const MUTE_KEY = 'ow-alarm-sound-muted';

let source = null;
let lastMessage = 0;
let outage = false; // the stream broke: reload what is shown once it is back
// Polling (overwatch.js) stands by only while snapshot events actually come: a stream
// that is open but hears nothing (processing publishing elsewhere, or not at all) must
// not leave a page without updates.
const PUSH_SILENT_MS = 120000;
let lastPush = 0;
const snapshotTimes = new Map(); // "run/subsystem" -> recent event times (ms)
const knownAlarms = new Set();
let firstAlarmFetch = true;
let baseTitle = document.title;

// ---------------------------------------------------------------- banners

function banner(id, className) {
  let element = document.getElementById(id);
  if (!element) {
    element = document.createElement('div');
    element.id = id;
    element.className = className;
    element.setAttribute('role', 'alert');
    element.hidden = true;
    const header = document.querySelector('header.ow-top');
    if (header) header.after(element);
    else body.prepend(element);
  }
  return element;
}

const degradedReasons = new Map();
function setDegraded(key, message) {
  if (message) degradedReasons.set(key, message);
  else degradedReasons.delete(key);
  const element = banner('ow-degraded', 'ow-banner ow-banner-degraded');
  element.textContent = [...degradedReasons.values()].join(' ');
  element.hidden = degradedReasons.size === 0;
  body.classList.toggle('ow-degraded', degradedReasons.size > 0);
  markStale();
}

// ---------------------------------------------------------------- the page

function page() {
  return document.getElementById('ow-page');
}

function pageWants(event) {
  const current = page();
  if (!current) return false;
  const any = (current.dataset.liveAny || '').split(/\s+/).filter(Boolean);
  if (any.includes(event.type)) return true;
  if (current.dataset.liveOverview && (event.type === 'snapshot' || event.type === 'alarm')) return true;
  const run = current.dataset.liveRun;
  if (!run) return false;
  const subsystems = (current.dataset.liveSubsystems || '').split(/\s+/).filter(Boolean);
  const subject = event.type === 'alarm' ? event.alarm || {} : event;
  if (subject.run === undefined || String(subject.run) !== run) return false;
  return !subsystems.length || subsystems.includes(subject.subsystem);
}

let updateTimer = null;
let lastPageRefresh = 0;
let expected = 0; // newest snapshot (unix s) an event announced for this page
let retries = 0;
function scheduleUpdate(snapshot = 0) {
  if (snapshot > expected) {
    expected = snapshot;
    retries = 0;
  }
  if (updateTimer) return;
  updateTimer = setTimeout(() => {
    updateTimer = null;
    update();
  }, 60); // events of one pass come together: one update for all of them
}

async function update() {
  const current = page();
  if (!current) return;
  if (current.querySelector('.ow-drawing[data-src]')) {
    // Drawings first (what a shifter watches), then the text around them.
    const drawn = new Promise((resolve) => current.addEventListener('ow:drawn', resolve, { once: true }));
    document.dispatchEvent(new CustomEvent('ow:redraw'));
    await drawn;
    await refreshRegions(current);
    // A server process may answer from before the snapshot (its database view or its
    // cache a moment behind the event): ask again, a few times, until the drawings show it.
    const shown = Math.max(0, ...[...current.querySelectorAll('.ow-drawing[data-snapshot]')].map((d) => Number(d.dataset.snapshot)));
    if (current.isConnected && shown && shown < Math.floor(expected) && retries < 5) {
      retries += 1;
      setTimeout(scheduleUpdate, 150 * retries);
    }
    return;
  }
  const wait = lastPageRefresh + PAGE_REFRESH_MS - Date.now();
  if (wait > 0) {
    setTimeout(scheduleUpdate, wait);
    return;
  }
  lastPageRefresh = Date.now();
  document.dispatchEvent(new CustomEvent('ow:refresh-page'));
}

// Text that follows the data: every [data-live-id] element is replaced by its
// counterpart in the server's current page; the title follows too.
async function refreshRegions(current) {
  const marked = current.querySelectorAll('[data-live-id]');
  let response;
  try {
    response = await fetch(location.href, { credentials: 'same-origin', headers: { 'X-Overwatch-Partial': '1' } });
  } catch (error) {
    return;
  }
  if (!response.ok || !current.isConnected) return;
  const fresh = new DOMParser().parseFromString(await response.text(), 'text/html').getElementById('ow-page');
  if (!fresh || !current.isConnected) return;
  const byId = new Map([...fresh.querySelectorAll('[data-live-id]')].map((e) => [e.dataset.liveId, e]));
  for (const element of marked) {
    const replacement = byId.get(element.dataset.liveId);
    if (replacement && replacement.outerHTML !== element.outerHTML) {
      element.replaceWith(document.importNode(replacement, true));
    }
  }
  if (fresh.dataset.title) {
    current.dataset.title = fresh.dataset.title;
    baseTitle = fresh.dataset.title;
    showTitle();
  }
}

// ---------------------------------------------------------------- freshness

function noteSnapshot(event) {
  const key = `${event.run}/${event.subsystem}`;
  const times = snapshotTimes.get(key) || [];
  times.push(Date.now());
  if (times.length > 20) times.shift();
  snapshotTimes.set(key, times);
}

// Expected cadence of what the page shows: the median gap of its recent snapshot events.
function expectedGapMs() {
  const current = page();
  if (!current || !current.dataset.liveRun) return null;
  const subsystems = (current.dataset.liveSubsystems || '').split(/\s+/).filter(Boolean);
  let newest = 0;
  const gaps = [];
  for (const [key, times] of snapshotTimes) {
    const [run, subsystem] = key.split('/');
    if (run !== current.dataset.liveRun || (subsystems.length && !subsystems.includes(subsystem))) continue;
    newest = Math.max(newest, times[times.length - 1]);
    for (let i = 1; i < times.length; i++) gaps.push(times[i] - times[i - 1]);
  }
  if (gaps.length < 2) return null;
  gaps.sort((a, b) => a - b);
  return { newest, gap: gaps[Math.floor(gaps.length / 2)] };
}

function markStale() {
  const current = page();
  if (!current) return;
  let stale = degradedReasons.size > 0;
  let reason = stale ? 'stale: the server cannot be reached' : '';
  const cadence = expectedGapMs();
  if (!stale && cadence) {
    const silent = Date.now() - cadence.newest;
    if (silent > Math.max(3 * cadence.gap, STALE_MIN_MS)) {
      stale = true;
      reason = `stale: no new snapshot for ${Math.round(silent / 1000)} s`;
    }
  }
  current.classList.toggle('ow-page-stale', stale);
  let mark = current.querySelector(':scope > .ow-stale-mark');
  if (stale && !mark) {
    mark = document.createElement('p');
    mark.className = 'ow-stale-mark';
    current.prepend(mark);
  }
  if (mark) {
    mark.hidden = !stale;
    mark.textContent = reason;
  }
}

// ---------------------------------------------------------------- alarms

function muted() {
  return localStorage.getItem(MUTE_KEY) === '1';
}

function beep() {
  if (muted()) return;
  try {
    const audio = new (window.AudioContext || window.webkitAudioContext)();
    for (const [start, frequency] of [[0, 880], [0.25, 660]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = frequency;
      gain.gain.value = 0.15;
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + start);
      tone.stop(audio.currentTime + start + 0.2);
    }
    setTimeout(() => audio.close(), 1000);
  } catch (error) {
    // no audio here (or not allowed before the user touched the page): the banner stays
  }
}

let openAlarms = [];
function showTitle() {
  const count = openAlarms.length;
  document.title = (count ? `(${count}) ` : '') + baseTitle.replace(/^\(\d+\) /, '');
}

async function refreshAlarms() {
  if (!body.dataset.alarms) return;
  let response;
  try {
    response = await fetch(body.dataset.alarms + '?active=1&acknowledged=0&limit=100', {
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
  } catch (error) {
    return;
  }
  if (!response.ok) return;
  const { alarms } = await response.json();
  const fresh = alarms.filter((a) => !knownAlarms.has(a.id));
  alarms.forEach((a) => knownAlarms.add(a.id));
  openAlarms = alarms;
  renderAlarmBanner();
  showTitle();
  if (fresh.length && !firstAlarmFetch) {
    beep();
    notify(fresh);
  }
  firstAlarmFetch = false;
}

function notify(alarms) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  for (const alarm of alarms.slice(0, 3)) {
    new Notification(`Overwatch: ${alarm.quality} in ${alarm.subsystem} run ${alarm.run}`, {
      body: `${alarm.check} on ${alarm.histogram}: ${alarm.message}`,
      tag: `overwatch-alarm-${alarm.id}`,
    });
  }
}

function renderAlarmBanner() {
  const element = banner('ow-alarm-banner', 'ow-banner ow-banner-alarm');
  element.hidden = openAlarms.length === 0;
  body.classList.toggle('ow-alarming', openAlarms.length > 0);
  if (!openAlarms.length) return;
  const newest = openAlarms[0];
  element.textContent = '';
  const count = document.createElement('strong');
  count.className = 'ow-alarm-count';
  count.textContent = `${openAlarms.length} open alarm${openAlarms.length === 1 ? '' : 's'}`;
  const text = document.createElement('span');
  text.className = 'ow-alarm-text';
  text.textContent = ` · ${newest.quality} in ${newest.subsystem} run ${newest.run}: ${newest.check} on ${newest.histogram} (${newest.message})`;
  const ack = document.createElement('button');
  ack.type = 'button';
  ack.className = 'ow-alarm-ack';
  ack.dataset.alarm = String(newest.id);
  ack.textContent = 'Acknowledge';
  ack.addEventListener('click', () => acknowledge(newest.id, ack));
  const all = document.createElement('a');
  all.href = body.dataset.alarmsPage + '?active=1&acknowledged=0';
  all.textContent = 'all open alarms';
  const sound = document.createElement('button');
  sound.type = 'button';
  sound.className = 'ow-alarm-mute';
  sound.textContent = muted() ? 'Sound off' : 'Sound on';
  sound.title = 'Alarm sound (remembered in this browser)';
  sound.addEventListener('click', () => {
    localStorage.setItem(MUTE_KEY, muted() ? '0' : '1');
    renderAlarmBanner();
  });
  element.append(count, text, ' ', ack, ' ', all, ' ', sound);
  if ('Notification' in window && Notification.permission === 'default') {
    const ask = document.createElement('button');
    ask.type = 'button';
    ask.textContent = 'Desktop notifications';
    ask.addEventListener('click', () => Notification.requestPermission().then(renderAlarmBanner));
    element.append(' ', ask);
  }
}

async function acknowledge(id, button) {
  button.disabled = true;
  const alarmsUrl = body.dataset.alarms.replace(/\/$/, '');
  let response;
  try {
    response = await fetch(`${alarmsUrl}/${id}/ack`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json', 'X-CSRF-Token': body.dataset.csrf || '' },
    });
  } catch (error) {
    button.disabled = false;
    return;
  }
  if (!response.ok) {
    button.disabled = false;
    button.textContent = `Acknowledge (failed: ${response.status})`;
    return;
  }
  openAlarms = openAlarms.filter((a) => a.id !== id);
  renderAlarmBanner();
  showTitle();
  refreshAlarms();
}

// ---------------------------------------------------------------- the stream

function handle(type, event) {
  lastMessage = Date.now();
  setDegraded('stream', null);
  switch (type) {
    case 'hello':
    case 'resync':
      if (outage || type === 'resync') scheduleUpdate(); // catch up with what was missed
      outage = false;
      refreshAlarms();
      return;
    case 'health':
      setDegraded('database', event.database === false ? 'The database cannot be reached: what is shown may be out of date.' : null);
      break;
    case 'snapshot':
      noteSnapshot(event);
      lastPush = Date.now();
      body.dataset.pushes = 'on';
      break;
    case 'alarm':
      refreshAlarms();
      break;
    default:
      break;
  }
  if (pageWants({ ...event, type })) scheduleUpdate(type === 'snapshot' ? event.timestamp : 0);
  markStale();
}

function connect() {
  if (!body.dataset.events || !window.EventSource) return;
  source = new EventSource(body.dataset.events);
  source.onopen = () => {
    body.dataset.live = 'on';
    lastMessage = Date.now();
    setDegraded('stream', null);
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      body.dataset.live = 'off'; // refused (limit reached, signed out): the pages poll
      body.dataset.pushes = 'off';
      return;
    }
    outage = true;
    body.dataset.live = 'off';
    body.dataset.pushes = 'off';
    setDegraded('stream', 'Cannot reach the Overwatch server: showing the last content received (stale); reconnecting by itself.');
  };
  for (const type of ['hello', 'resync', 'snapshot', 'alarm', 'receiver', 'health']) {
    source.addEventListener(type, (message) => {
      let event = {};
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      handle(type, event);
    });
  }
}

setInterval(() => {
  if (body.dataset.pushes === 'on' && (body.dataset.live !== 'on' || Date.now() - lastPush > PUSH_SILENT_MS)) {
    body.dataset.pushes = 'off';
  }
  if (source && body.dataset.live === 'on' && Date.now() - lastMessage > STREAM_SILENT_MS) {
    outage = true;
    setDegraded('stream', 'No word from the Overwatch server for a while: showing the last content received (stale).');
  }
  markStale();
}, 5000);

// A new page (navigation): its title is the base of the alarm count; its stale mark is fresh.
const main = document.getElementById('ow-main');
if (main) {
  new MutationObserver(() => {
    const current = page();
    if (current) baseTitle = current.dataset.title || document.title;
    expected = 0;
    showTitle();
    markStale();
  }).observe(main, { childList: true });
}

connect();
refreshAlarms();

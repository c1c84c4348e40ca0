// Overwatch pages: JSROOT drawings and navigation without full page reloads.
//
// - Every <div class="ow-drawing" data-src="JSON URL" data-opt="draw option"> is
//   drawn by JSROOT (vendored, loaded as an ES module on first need).
// - Same-site links and GET forms are followed with fetch(): the server answers
//   only the page content (header X-Overwatch-Partial: 1), which replaces
//   #ow-page; history.pushState keeps the URL (and so every view state) exact,
//   and the back button works.
// - Pages are live (live.js: pushed events redraw in place, keeping the user's zoom).
//   As a fallback while no event stream is up, data-refresh-page="S" reloads the
//   content every S seconds (status, run list) and data-refresh-drawings="S"
//   re-fetches each histogram and redraws only those whose ETag changed.

const PARTIAL_HEADER = 'X-Overwatch-Partial';
const NO_NAV_PREFIXES = ['/api/', '/download/', '/static/', '/logout', '/healthz'];

let jsrootPromise = null;
let navigation = 0;
let refreshTimer = null;

function loadJsroot() {
  if (!jsrootPromise) {
    jsrootPromise = import(document.body.dataset.jsroot).then((J) => {
      J.settings.ZoomWheel = false; // scrolling the page must not zoom a histogram
      J.settings.DarkMode = document.documentElement.dataset.theme === 'dark'; // dark-mode hook below
      return J;
    });
  }
  return jsrootPromise;
}

// Dark-mode hook (comfort.js owns the theme and sends 'ow:theme'): JSROOT's own dark mode,
// settings.DarkMode for canvases drawn from now on, changeDarkMode() for those on the page.
document.addEventListener('ow:theme', (event) => {
  if (!jsrootPromise) return;
  jsrootPromise.then((J) => {
    J.settings.DarkMode = Boolean(event.detail && event.detail.dark);
    document.querySelectorAll('.root_canvas').forEach((svg) => {
      J.getElementCanvPainter(svg.parentElement)?.changeDarkMode(J.settings.DarkMode);
    });
  });
});

function showError(div, message) {
  div.classList.add('ow-drawing-error');
  div.textContent = message;
}

function loginRedirect(response) {
  const url = new URL(response.url, location.href);
  if (response.status === 401 || url.pathname.endsWith('/login')) {
    location.assign(document.body.dataset.login + '?next=' + encodeURIComponent(location.pathname + location.search));
    return true;
  }
  return false;
}

// Fetch one drawing's JSON (started for all drawings at once, drawn in order).
async function fetchOne(div) {
  const src = div.dataset.src;
  try {
    const response = await fetch(src, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    return { src, response };
  } catch (error) {
    return { src, error };
  }
}

// Numbers over bars ("text" options): room above the highest bar for its number, which
// JSROOT draws above the bar's top and would otherwise clip at the frame (the first bin of a
// falling distribution lost its label). A range the producer or user set is kept.
const NO_ZOOM = -1111;
function roomForText(obj, option) {
  if (!/text/i.test(option) || /logy/i.test(option) || !obj || !obj._typename?.startsWith('TH1')) return;
  if (obj.fMaximum !== NO_ZOOM || !Array.isArray(obj.fArray)) return;
  const inner = obj.fArray.slice(1, -1);
  const top = Math.max(0, ...inner);
  if (top > 0) obj.fMaximum = top * 1.18;
}

// Axis titles clear of the tick labels. JSROOT draws the x title at the axis' right end,
// where the last label often is: at ROOT's offset 1 they ran into each other, so it goes a
// little lower. A y title at offset 1 or less is placed by JSROOT itself (offset 0: just
// left of the widest label). Members of a stack and a graph's frame get the same.
const X_TITLE_OFFSET = 1.35;
function clearTitles(obj) {
  const histograms = obj?._typename === 'THStack' ? (obj.fHists?.arr || [])
    : obj?.fHistogram ? [obj.fHistogram] : [obj]; // a graph's axes are its frame histogram's
  for (const h of histograms) {
    if (!h?.fXaxis || !h._typename?.startsWith('TH') && !h._typename?.startsWith('TProfile')) continue;
    if (h.fXaxis.fTitle && h.fXaxis.fTitleOffset < X_TITLE_OFFSET) h.fXaxis.fTitleOffset = X_TITLE_OFFSET;
    if (h.fYaxis?.fTitle && h.fYaxis.fTitleOffset <= 1) h.fYaxis.fTitleOffset = 0;
  }
}

// Stat boxes clear of the data. JSROOT puts a 1D histogram's stat box in the frame's top
// right corner and sizes the y axis to the data alone, so a distribution that is high at
// the right (a flat phi, counts per sector) ran under the box. After drawing, the bins
// under the box (their tops, error bars included) are measured; if one reaches the box, the
// y range is raised just enough to keep it below (fMaximum, fMinimum kept as drawn, in log
// space on a log axis) and the histogram redrawn. A range the producer, the user's option
// or the user's zoom set is kept.
const STATS_GAP = 4; // pixels between the highest bin under the box and the box
async function clearStats(J, div, obj, option) {
  if (!obj?._typename?.match(/^TH1|^TProfile$/) || /same/i.test(option)) return;
  if (obj.fMaximum !== NO_ZOOM || obj.fMinimum !== NO_ZOOM) return;
  const main = J.getElementCanvPainter(div)?.getMainPainter(); // the histogram's painter
  const fp = main?.getFramePainter();
  if (!fp?.grx || main.getObject() !== obj || fp.zoomChangedInteractive?.()) return;
  const found = [];
  J.getElementCanvPainter(div)?.forEachPainterInPad((p) => {
    if (p.getObject()?._typename === 'TPaveStats') found.push(p);
  }, 'objects');
  const box = found[0]?.getG()?.node().getBoundingClientRect();
  const svg = div.querySelector('svg')?.getBoundingClientRect();
  if (!box?.height || !svg) return;
  // The frame in the page's pixels (a bounding box of the frame's group holds its axes too).
  const frame = { x: svg.x + fp.getFrameX(), y: svg.y + fp.getFrameY(), height: fp.getFrameHeight() };
  const errors = Boolean((main.getOptions?.() || main.options)?.Error);
  let top = -Infinity;
  for (let i = 1; i <= obj.fXaxis.fNbins; i++) {
    const x0 = frame.x + fp.grx(obj.fXaxis.GetBinLowEdge(i));
    const x1 = frame.x + fp.grx(obj.fXaxis.GetBinLowEdge(i + 1));
    if (Math.max(x0, x1) <= box.x || Math.min(x0, x1) >= box.x + box.width) continue;
    const value = obj.getBinContent(i) + (errors ? obj.getBinError(i) : 0);
    if (!fp.logy || value > 0) top = Math.max(top, value);
  }
  if (top === -Infinity || frame.y + fp.gry(top) >= box.y + box.height + STATS_GAP) return;
  const f = (box.y + box.height + STATS_GAP - frame.y) / frame.height; // box bottom, from the top
  if (f <= 0 || f >= 0.8) return; // a box that tall leaves no room worth making
  const scale = fp.logy ? Math.log10 : (v) => v;
  const low = scale(fp.scale_ymin);
  const high = (scale(top) - f * low) / (1 - f);
  if (!(high > scale(fp.scale_ymax))) return;
  obj.fMinimum = fp.scale_ymin;
  obj.fMaximum = fp.logy ? 10 ** high : high;
  await J.redraw(div, obj, option);
}

// Draw one fetched histogram; skip the drawing when its content did not change. A drawing
// already on the page is updated in place (JSROOT keeps the user's zoom, log scales and
// draw options); data-snapshot says which snapshot (unix seconds) the drawing shows.
async function drawFetched(J, div, fetched) {
  const { src, response, error } = fetched;
  const drawn = div.dataset.drawnSrc === src && div.querySelector('svg');
  if (error) {
    // Keep what is shown, marked stale; a later update redraws it.
    if (drawn) div.classList.add('ow-stale');
    else showError(div, 'cannot reach the server: ' + error);
    return;
  }
  if (loginRedirect(response)) return;
  if (!response.ok) {
    const body = await response.json().catch(() => ({ error: response.statusText }));
    if (drawn && response.status >= 500) div.classList.add('ow-stale');
    else showError(div, body.error || response.statusText);
    return;
  }
  const etag = response.headers.get('ETag') || '';
  const snapshot = response.headers.get('X-Overwatch-Snapshot');
  if (drawn && div.dataset.etag === etag) {
    if (snapshot) div.dataset.snapshot = snapshot;
    div.classList.remove('ow-stale');
    return;
  }
  const text = await response.text();
  if (!div.isConnected) return; // the page changed meanwhile
  try {
    const obj = J.parse(text);
    roomForText(obj, div.dataset.opt || '');
    clearTitles(obj);
    if (drawn) {
      await J.redraw(div, obj, div.dataset.opt || '');
    } else {
      J.cleanup(div);
      div.textContent = '';
      div.classList.remove('ow-drawing-error');
      await J.draw(div, obj, div.dataset.opt || '');
    }
    await clearStats(J, div, obj, div.dataset.opt || '');
    div.dataset.drawnSrc = src;
    div.dataset.etag = etag;
    if (snapshot) div.dataset.snapshot = snapshot;
    div.classList.add('ow-drawn');
    div.classList.remove('ow-stale');
  } catch (error) {
    showError(div, 'JSROOT could not draw this histogram: ' + error);
  }
}

// All fetches start at once (the browser queues them); drawing goes one after the
// other in page order, so the first ones appear quickly and nothing draws twice at once.
let drawing = Promise.resolve();
function drawAll(page) {
  drawing = drawing.then(() => drawQueued(page)).catch(() => {});
  return drawing;
}

async function drawQueued(page) {
  const divs = [...page.querySelectorAll('.ow-drawing[data-src]')];
  if (!divs.length) return;
  let J;
  try {
    J = await loadJsroot();
  } catch (error) {
    divs.forEach((div) => showError(div, 'JSROOT did not load: ' + error));
    return;
  }
  const fetches = divs.map((div) => fetchOne(div));
  for (const [i, div] of divs.entries()) {
    const fetched = await fetches[i];
    if (!page.isConnected) return;
    await drawFetched(J, div, fetched);
  }
  page.dataset.drawn = 'done';
  page.dispatchEvent(new CustomEvent('ow:drawn', { bubbles: true }));
}

function cleanupDrawings(page) {
  if (!jsrootPromise) return;
  jsrootPromise.then((J) => page.querySelectorAll('.ow-drawn').forEach((div) => J.cleanup(div)));
}

function markSection(page) {
  const section = page.dataset.section || '';
  document.querySelectorAll('.ow-nav a').forEach((a) => {
    a.classList.toggle('ow-current', a.dataset.section === section);
  });
}

function initPage(page) {
  clearInterval(refreshTimer);
  refreshTimer = null;
  markSection(page);
  drawAll(page);
  const pageSeconds = Number(page.dataset.refreshPage || 0);
  const drawingSeconds = Number(page.dataset.refreshDrawings || 0);
  // Polling is the fallback of live updates (live.js): it stands by while the stream is on.
  const live = () => document.body.dataset.pushes === 'on';
  if (pageSeconds > 0) {
    refreshTimer = setInterval(() => {
      if (!live()) navigate(location.href, { push: false, refresh: true });
    }, pageSeconds * 1000);
  } else if (drawingSeconds > 0) {
    refreshTimer = setInterval(() => {
      if (!live()) drawAll(page);
    }, drawingSeconds * 1000);
  }
}

function progress(on) {
  const bar = document.getElementById('ow-progress');
  if (bar) bar.hidden = !on;
}

async function navigate(href, { push = true, refresh = false } = {}) {
  // A background refresh never cancels what the user asked for; a user's
  // navigation cancels any earlier one (and any refresh still under way).
  const token = refresh ? navigation : ++navigation;
  if (!refresh) progress(true);
  let response;
  try {
    response = await fetch(href, { credentials: 'same-origin', headers: { [PARTIAL_HEADER]: '1' } });
  } catch (error) {
    if (!refresh) location.assign(href); // let the browser show what is wrong
    return;
  } finally {
    if (!refresh && token === navigation) progress(false);
  }
  if (token !== navigation) return; // a newer navigation won
  const finalUrl = new URL(response.url, location.href);
  if (finalUrl.pathname.endsWith('/login') && !new URL(href, location.href).pathname.endsWith('/login')) {
    location.assign(response.url); // session ended: the full login page
    return;
  }
  const html = await response.text();
  if (token !== navigation) return;
  const fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('ow-page');
  const current = document.getElementById('ow-page');
  if (!fresh || !current) {
    location.assign(href);
    return;
  }
  if (refresh && !response.ok) return; // keep showing the last good content
  const page = document.importNode(fresh, true);
  cleanupDrawings(current);
  current.replaceWith(page);
  document.title = page.dataset.title || document.title;
  const shown = finalUrl.pathname + finalUrl.search + finalUrl.hash;
  if (push) {
    history.pushState({ overwatch: true }, '', shown);
    window.scrollTo(0, 0);
  } else if (shown !== location.pathname + location.search + location.hash) {
    history.replaceState({ overwatch: true }, '', shown);
  }
  initPage(page);
}

function navigable(url) {
  return url.origin === location.origin && !NO_NAV_PREFIXES.some((p) => url.pathname.startsWith(p));
}

document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest('a[href]');
  if (!link || link.target || link.hasAttribute('download') || link.closest('[data-no-nav]')) return;
  if (link.hasAttribute('data-no-nav')) return;
  const url = new URL(link.href, location.href);
  if (!navigable(url)) return;
  if (url.hash && url.pathname === location.pathname && url.search === location.search) return;
  event.preventDefault();
  navigate(url.href);
});

document.addEventListener('submit', (event) => {
  const form = event.target;
  if (form.hasAttribute('data-no-nav') || (form.method || 'get').toLowerCase() !== 'get') return;
  const url = new URL(form.action || location.href, location.href);
  if (!navigable(url)) return;
  event.preventDefault();
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    if (value !== '') params.append(key, value);
  }
  url.search = params.toString();
  navigate(url.href);
});

window.addEventListener('popstate', () => navigate(location.href, { push: false }));

let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (!jsrootPromise) return;
    jsrootPromise.then((J) => document.querySelectorAll('.ow-drawn').forEach((div) => J.resize(div)));
  }, 200);
});

// Other page scripts (slices.js: a moving window's new slice; live.js: a new snapshot) ask
// for a redraw: only the drawings whose URL or content changed are drawn again, in place.
document.addEventListener('ow:redraw', () => {
  const page = document.getElementById('ow-page');
  if (page) drawAll(page);
});

// live.js: reload the page's content in place (pages without drawings).
document.addEventListener('ow:refresh-page', () => navigate(location.href, { push: false, refresh: true }));

const firstPage = document.getElementById('ow-page');
if (firstPage) {
  history.replaceState({ overwatch: true }, '', location.href);
  initPage(firstPage);
}

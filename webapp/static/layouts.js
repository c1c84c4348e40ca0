// Tab cycling of layout pages (server side: webapp/layouts.py, templates/layout.html).
//
// A tab with cycle_seconds puts data-cycle-seconds on #ow-page (not with ?cycle=0 in the
// URL: the server leaves it out). After that many seconds the next tab's link (marked
// data-next-tab) is clicked, so overwatch.js follows it without a page reload and the URL
// keeps the state (tab, run, cycle). Pages are swapped by overwatch.js: a MutationObserver
// on <main> notices each new #ow-page and restarts the timer for it. A module runs once
// per document, so loading it from every layout page is harmless.

let timer = null;
let shown = null;

function start(page) {
  clearTimeout(timer);
  timer = null;
  shown = page;
  if (!page) return;
  const seconds = Number(page.dataset.cycleSeconds || 0);
  if (!(seconds > 0)) return;
  timer = setTimeout(() => {
    const next = page.isConnected ? page.querySelector('a[data-next-tab]') : null;
    if (next) next.click();
  }, seconds * 1000);
}

start(document.getElementById('ow-page'));
new MutationObserver(() => {
  const page = document.getElementById('ow-page');
  if (page !== shown) start(page);
}).observe(document.getElementById('ow-main') || document.body, { childList: true });

// Control-room comfort: dark mode, kiosk (big-screen) mode, plot size, finding histograms.
//
// A classic script loaded in <head> (not a module): it sets its attributes on <html> before
// the first paint, so a wall screen never flashes light or shows its chrome. Everything else
// binds to the document (delegation) or watches #ow-main, because overwatch.js replaces the
// page content without reloading.
//
// - Theme: data-theme="dark|light" on <html>. It follows the system (prefers-color-scheme)
//   until the header toggle is used; the choice is then remembered (localStorage). Each
//   change sends 'ow:theme' ({detail: {dark}}) on document: overwatch.js sets JSROOT's own
//   dark mode (settings.DarkMode) for new and drawn canvases.
// - Kiosk: ?kiosk=1 on any URL (?kiosk=0 leaves it), remembered for the tab (sessionStorage)
//   so it survives navigation: class ow-kiosk on <html> hides the chrome (overwatch.css) and
//   the figures of a run page are laid out to fill the screen (--ow-kiosk-columns/-height).
// - Plot size: data-plot-size="small|medium|large" on <html>, chosen on run pages, remembered.
// - Find: the run page's box hides the figures whose histogram path does not contain every
//   word typed (case-insensitive), instantly; ?q= in the URL keeps it across reloads.

(() => {
  const root = document.documentElement;
  const THEME_KEY = 'overwatch.theme';
  const SIZE_KEY = 'overwatch.plotSize';
  const KIOSK_KEY = 'overwatch.kiosk';
  const SIZES = ['small', 'medium', 'large'];
  const system = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;

  function stored(storage, key) {
    try {
      return storage.getItem(key);
    } catch (error) {
      return null; // storage refused (privacy settings): the defaults apply
    }
  }

  function store(storage, key, value) {
    try {
      if (value === null) storage.removeItem(key);
      else storage.setItem(key, value);
    } catch (error) {
      /* not remembered, still applied */
    }
  }

  // ------------------------------------------------------------------------------ theme
  function systemTheme() {
    return system && system.matches ? 'dark' : 'light';
  }

  function applyTheme() {
    const choice = stored(localStorage, THEME_KEY);
    const theme = choice === 'dark' || choice === 'light' ? choice : systemTheme();
    const changed = root.dataset.theme !== theme;
    root.dataset.theme = theme;
    document.querySelectorAll('[data-ow-theme-toggle]').forEach((button) => {
      button.setAttribute('aria-pressed', String(theme === 'dark'));
      button.textContent = theme === 'dark' ? 'Light' : 'Dark';
    });
    if (changed) document.dispatchEvent(new CustomEvent('ow:theme', { detail: { dark: theme === 'dark' } }));
  }

  function toggleTheme() {
    const next = root.dataset.theme === 'dark' ? 'light' : 'dark';
    // Back to the system's theme: forget the choice, so the system is followed again.
    store(localStorage, THEME_KEY, next === systemTheme() ? null : next);
    applyTheme();
  }

  // ------------------------------------------------------------------------------ kiosk
  function readKiosk() {
    const param = new URLSearchParams(location.search).get('kiosk');
    if (param === '1' || param === 'true') store(sessionStorage, KIOSK_KEY, '1');
    else if (param === '0' || param === 'false') store(sessionStorage, KIOSK_KEY, null);
    root.classList.toggle('ow-kiosk', stored(sessionStorage, KIOSK_KEY) === '1');
  }

  // Columns and row height that give the figures the largest plots on one screen
  // (a plot no taller than wide); many figures get a minimum height and the page scrolls.
  function fitKiosk(page) {
    const grid = page && page.querySelector('.ow-grid');
    if (!grid || !root.classList.contains('ow-kiosk')) return false;
    const figures = [...grid.querySelectorAll('.ow-figure:not([hidden])')];
    const n = figures.length;
    if (!n) return false;
    const width = grid.clientWidth;
    const height = window.innerHeight - grid.getBoundingClientRect().top - window.scrollY - 8;
    const caption = 34; // figcaption and figure padding
    let best = { columns: 1, plot: 0, area: -1 };
    for (let columns = 1; columns <= n; columns += 1) {
      const rows = Math.ceil(n / columns);
      const cellWidth = width / columns;
      const plot = height / rows - caption - 6;
      const area = cellWidth * Math.max(0, Math.min(plot, cellWidth));
      if (area > best.area) best = { columns, plot, area };
    }
    const columns = String(best.columns);
    const plot = `${Math.max(180, Math.floor(best.plot))}px`;
    if (grid.style.getPropertyValue('--ow-kiosk-columns') === columns && grid.style.getPropertyValue('--ow-kiosk-height') === plot) return false;
    grid.style.setProperty('--ow-kiosk-columns', columns);
    grid.style.setProperty('--ow-kiosk-height', plot);
    return true;
  }

  // ------------------------------------------------------------------------------ plot size
  function applySize() {
    const size = stored(localStorage, SIZE_KEY);
    root.dataset.plotSize = SIZES.includes(size) ? size : 'medium';
    document.querySelectorAll('[data-ow-plot-size]').forEach((button) => {
      button.setAttribute('aria-pressed', String(button.dataset.owPlotSize === root.dataset.plotSize));
    });
  }

  // JSROOT drawings follow their element's size on a window resize (overwatch.js).
  function redrawSizes() {
    window.dispatchEvent(new Event('resize'));
  }

  // ------------------------------------------------------------------------------ find
  function search(page, { keepUrl = false } = {}) {
    const input = page && page.querySelector('[data-ow-search]');
    if (!input) return;
    const terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    const figures = [...page.querySelectorAll('.ow-grid .ow-figure')];
    let shown = 0;
    for (const figure of figures) {
      const link = figure.querySelector('figcaption a');
      const name = (link ? link.textContent : figure.textContent).toLowerCase();
      const match = terms.every((term) => name.includes(term));
      figure.hidden = !match;
      if (match) shown += 1;
    }
    const note = page.querySelector('.ow-search-note');
    if (note) {
      note.hidden = terms.length === 0;
      note.textContent = terms.length ? `${shown} of ${figures.length} histograms match “${input.value.trim()}”.` : '';
    }
    if (!keepUrl) {
      const url = new URL(location.href);
      if (terms.length) url.searchParams.set('q', input.value.trim());
      else url.searchParams.delete('q');
      history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    }
  }

  // ------------------------------------------------------------------------------ pages
  function initPage() {
    const page = document.getElementById('ow-page');
    applyTheme(); // the header's toggle label
    applySize();
    search(page, { keepUrl: true });
    if (fitKiosk(page)) redrawSizes();
  }

  readKiosk();
  applyTheme();
  applySize();
  if (system && system.addEventListener) system.addEventListener('change', applyTheme);
  window.addEventListener('storage', (event) => {
    if (event.key === THEME_KEY) applyTheme();
    if (event.key === SIZE_KEY) applySize();
  });

  document.addEventListener('click', (event) => {
    const toggle = event.target.closest('[data-ow-theme-toggle]');
    if (toggle) {
      toggleTheme();
      return;
    }
    const sizeButton = event.target.closest('[data-ow-plot-size]');
    if (sizeButton) {
      store(localStorage, SIZE_KEY, sizeButton.dataset.owPlotSize);
      applySize();
      redrawSizes();
    }
  });

  let searchTimer = null;
  document.addEventListener('input', (event) => {
    if (!event.target.matches('[data-ow-search]')) return;
    search(event.target.closest('#ow-page'));
    clearTimeout(searchTimer); // figures shown again take their size once typing pauses
    searchTimer = setTimeout(redrawSizes, 150);
  });
  // Enter in the box must not submit anything (it is in no form, but be explicit).
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && event.target.matches && event.target.matches('[data-ow-search]')) event.preventDefault();
  });

  let fitTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(fitTimer);
    fitTimer = setTimeout(() => {
      if (fitKiosk(document.getElementById('ow-page'))) redrawSizes();
    }, 100);
  });

  document.addEventListener('DOMContentLoaded', () => {
    initPage();
    const main = document.getElementById('ow-main');
    // overwatch.js swaps #ow-page on navigation: set the new page up the same way.
    if (main) new MutationObserver(initPage).observe(main, { childList: true });
    // Something above the plots may appear later (a banner, a note): fit the kiosk again.
    if (window.ResizeObserver) {
      new ResizeObserver(() => {
        clearTimeout(fitTimer);
        fitTimer = setTimeout(() => {
          if (fitKiosk(document.getElementById('ow-page'))) redrawSizes();
        }, 100);
      }).observe(document.body);
    }
  });
  window.addEventListener('popstate', readKiosk);
})();

// Detector plugin decorations over JSROOT drawings, and the scripts of the alarms and trends pages.
//
// overwatch.js draws every <div class="ow-drawing">. When a drawing that has an
// annotation (<div class="ow-annotation" data-decorations="[...]"> in the same
// figure or page) is drawn or redrawn, its decorations are added to the JSROOT
// pad as ROOT primitives in axis coordinates: a TMarker per hot cell, a TBox per
// dead region, TLine and TLatex for lines and text. Being pad primitives, they
// follow zooming and resizing like the histogram itself.
//
// Pages are swapped without reloads (overwatch.js replaces #ow-page), so every
// page script here re-runs on each new #ow-page (a MutationObserver), never
// relying on <script> tags inside the content.

import { initPage as initAlarms } from './alarms.js';
import { initPage as initTrends } from './trends.js';

// ROOT colour indices of the colour names plugins use.
const COLORS = {
  white: 0, black: 1, red: 2, green: 3, blue: 4, yellow: 5, magenta: 6, cyan: 7,
  orange: 800, grey: 920, gray: 920,
};
const MARKER_OPEN_CIRCLE = 24;

let jsroot = null;
function loadJsroot() {
  if (!jsroot) jsroot = import(document.body.dataset.jsroot);
  return jsroot;
}

function colorIndex(name) {
  const index = COLORS[String(name || '').toLowerCase()];
  return index === undefined ? COLORS.red : index;
}

// One decoration ({kind, x, y, x2, y2, label, color}) as a JSROOT object, or null.
function primitive(J, d) {
  const color = colorIndex(d.color);
  const finite = (...values) => values.every((v) => typeof v === 'number' && Number.isFinite(v));
  if (!finite(d.x, d.y)) return null;
  if (d.kind === 'marker') {
    const marker = J.create('TMarker');
    Object.assign(marker, { fX: d.x, fY: d.y, fMarkerColor: color, fMarkerStyle: MARKER_OPEN_CIRCLE, fMarkerSize: 2.2 });
    return marker;
  }
  if ((d.kind === 'box' || d.kind === 'line') && finite(d.x2, d.y2)) {
    const obj = J.create(d.kind === 'box' ? 'TBox' : 'TLine');
    Object.assign(obj, { fX1: d.x, fY1: d.y, fX2: d.x2, fY2: d.y2, fLineColor: color, fLineWidth: 2, fLineStyle: 1 });
    if (d.kind === 'box') Object.assign(obj, { fFillStyle: 0, fFillColor: 0 });
    return obj;
  }
  if (d.kind === 'text' && d.label) {
    const text = J.create('TLatex');
    Object.assign(text, { fX: d.x, fY: d.y, fTitle: String(d.label), fTextColor: color, fTextSize: 0.04, fTextAlign: 12 });
    return text;
  }
  return null;
}

function annotationOf(div) {
  const scope = div.closest('figure') || div.parentElement;
  return scope ? scope.querySelector('.ow-annotation[data-decorations]') : null;
}

async function decorate(div) {
  const note = annotationOf(div);
  if (!note || !div.querySelector('svg')) return;
  let items;
  try {
    items = JSON.parse(note.dataset.decorations || '[]');
  } catch (error) {
    return;
  }
  if (!Array.isArray(items) || !items.length) return;
  // One set of decorations per drawing: the key changes whenever overwatch.js redraws.
  const key = `${div.dataset.drawnSrc}|${div.dataset.etag}`;
  if (div.dataset.decoratedFor === key) return;
  div.dataset.decoratedFor = key;
  const J = await loadJsroot();
  let drawn = 0;
  for (const d of items) {
    const obj = primitive(J, d);
    if (!obj || !div.isConnected || div.dataset.decoratedFor !== key) continue;
    try {
      await J.draw(div, obj, '');
      drawn += 1;
    } catch (error) {
      console.warn('Overwatch: decoration not drawn:', error);
    }
  }
  if (div.dataset.decoratedFor === key) div.dataset.decorated = String(drawn);
}

// Drawings finished by overwatch.js get their data-drawn-src / data-etag set last.
const drawings = new MutationObserver((records) => {
  const seen = new Set();
  for (const record of records) {
    const div = record.target;
    if (div.classList && div.classList.contains('ow-drawing') && !seen.has(div)) {
      seen.add(div);
      decorate(div);
    }
  }
});

function initPage(page) {
  if (!page || page.dataset.pluginViewReady) return;
  page.dataset.pluginViewReady = '1';
  drawings.observe(page, { subtree: true, attributes: true, attributeFilter: ['data-drawn-src', 'data-etag'] });
  page.querySelectorAll('.ow-drawing.ow-drawn').forEach((div) => decorate(div));
  initAlarms(page);
  initTrends(page);
}

const main = document.getElementById('ow-main');
if (main) {
  new MutationObserver(() => initPage(document.getElementById('ow-page'))).observe(main, { childList: true });
}
initPage(document.getElementById('ow-page'));

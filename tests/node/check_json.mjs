// Parse and draw the JSON Overwatch serves, with the real JSROOT, and report what JSROOT sees.
//
// Usage: node check_json.mjs [input.json]   (reads stdin without an argument)
// Input: a JSON list of {name, json, option}; `json` is the exact string served to browsers.
// Output: one line per object, in input order: the prefix '@overwatch-result ' and then
//   {name, error, typename, fName, fTitle, fEntries, svg_length, has_svg, svg_texts, ...}
// Histograms add `axes` (nbins, xmin, xmax, xbins, title, labels, time settings) and the content and error
// of every bin (flow bins included, x fastest, as ROOT's fArray) read through JSROOT's own
// accessors getBinContent/getBinError (means for profiles), base64-encoded Float64 arrays
// so that big histograms travel fast and exactly. Graphs add fNpoints, fX, fY and the time
// axis settings; stacks add the typenames and names of their members.
// A failure of one object is reported in its `error` field; the others still run.

import { readFileSync } from 'node:fs';
import { parse, makeSVG } from 'jsroot';

const HISTOGRAM = /^(TH[123][CSILFD]|TProfile|TProfile2D|TProfile3D)$/;

function dimension(typename) {
   if (typename.startsWith('TProfile'))
      return typename === 'TProfile' ? 1 : Number(typename[8]);
   return Number(typename[2]);
}

function encode(values) {
   return Buffer.from(Float64Array.from(values).buffer).toString('base64');
}

function describeAxis(axis) {
   const labels = axis.fLabels ? axis.fLabels.arr.map(s => [s.fUniqueID, s.fString]) : null;
   return {
      nbins: axis.fNbins, xmin: axis.fXmin, xmax: axis.fXmax, xbins: Array.from(axis.fXbins),
      title: axis.fTitle, labels, time_display: axis.fTimeDisplay, time_format: axis.fTimeFormat
   };
}

function describeHistogram(obj) {
   const ndim = dimension(obj._typename),
         axes = [obj.fXaxis, obj.fYaxis, obj.fZaxis].slice(0, ndim),
         n = axes.map(a => a.fNbins + 2),
         [nx, ny, nz] = [n[0], n[1] ?? 1, n[2] ?? 1],
         contents = new Float64Array(nx * ny * nz),
         errors = new Float64Array(nx * ny * nz);
   let index = 0;
   for (let iz = 0; iz < nz; ++iz) {
      for (let iy = 0; iy < ny; ++iy) {
         for (let ix = 0; ix < nx; ++ix, ++index) {
            const coords = [ix, iy, iz].slice(0, ndim);
            contents[index] = obj.getBinContent(...coords);
            errors[index] = obj.getBinError(obj.getBin(...coords));
         }
      }
   }
   return {
      ndim, ncells: obj.fNcells, array_length: obj.fArray.length,
      axes: axes.map(describeAxis),
      contents_b64: encode(contents), errors_b64: encode(errors),
      sumw2_length: obj.fSumw2.length, fOption: obj.fOption
   };
}

function describe(obj) {
   const typename = obj._typename;
   if (HISTOGRAM.test(typename))
      return describeHistogram(obj);
   if (typename === 'TGraph') {
      return { fNpoints: obj.fNpoints, fX: Array.from(obj.fX), fY: Array.from(obj.fY),
               xaxis: describeAxis(obj.fHistogram.fXaxis), yaxis: describeAxis(obj.fHistogram.fYaxis) };
   }
   if (typename === 'THStack') {
      return { members: obj.fHists.arr.map(h => ({ typename: h._typename, fName: h.fName,
                                                   fLineColor: h.fLineColor })) };
   }
   return {};
}

// The text drawn in the SVG (titles, axis labels), to check that labels really show.
function svgTexts(svg) {
   const texts = [];
   for (const match of svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g))
      texts.push(match[1]);
   return texts;
}

async function check(item) {
   const result = { name: item.name, error: null };
   try {
      const obj = parse(item.json);
      if (!obj?._typename)
         throw new Error('JSROOT.parse returned no ROOT object');
      Object.assign(result, { typename: obj._typename, fName: obj.fName, fTitle: obj.fTitle,
                              fEntries: obj.fEntries ?? null }, describe(obj));
      const svg = await makeSVG({ object: obj, option: item.option ?? '', width: 600, height: 400 });
      result.svg_length = svg.length;
      result.has_svg = svg.includes('<svg');
      result.svg_texts = svgTexts(svg);
   } catch (err) {
      result.error = String(err?.stack ?? err);
   }
   return result;
}

// JSROOT itself may print to stdout (console.log); results carry this prefix so that
// the reader can tell them apart.
const RESULT = '@overwatch-result ';

const input = readFileSync(process.argv[2] ?? 0, 'utf8');
for (const item of JSON.parse(input))
   process.stdout.write(RESULT + JSON.stringify(await check(item)) + '\n');

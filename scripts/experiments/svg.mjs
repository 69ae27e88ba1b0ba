// A small, dependency-free SVG line-chart writer for the experiment scripts:
// axes with "nice" ticks (linear or log x), several series with optional dashes
// and markers, a legend to the right of the plot, and side-by-side panels that
// share one file.
//
//   writeFileSync('plot.svg', lineChart({
//     title: 'Test accuracy', xLabel: 'steps', yLabel: 'accuracy', xScale: 'log',
//     series: [{ name: 'EMA', points: [[10, 0.4], [100, 0.7]] }],
//   }));

/** Tableau 10: distinguishable, and readable by most colour-blind readers. */
export const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

const DASHES = { solid: null, dashed: '6 4', dotted: '2 3', dashdot: '8 3 2 3' };
const FONT = 'Helvetica, Arial, sans-serif';
const CHAR_WIDTH = 6.6; // average glyph width at 12px, for laying out the legend
const MARGIN = { top: 34, right: 16, bottom: 46, left: 58 };
const GRID = '#e5e5e5';

const escapeXml = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const fixed = (v) => Number(v.toFixed(2)); // coordinates: two decimals are plenty
let clipIds = 0; // a counter, not randomness, so the same data writes the same file

/** Up to about `count` round ticks (1, 2 or 5 times a power of ten) covering [lo, hi]. */
export function niceTicks(lo, hi, count = 6) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count - 1);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Number(v.toPrecision(12))); // drop accumulated float noise
  }
  return ticks;
}

/** Ticks for a log axis: powers of ten, and 2 and 5 times them when the range is short. */
export function logTicks(lo, hi) {
  const ticks = [];
  const decades = Math.log10(hi / lo);
  const mantissas = decades <= 2 ? [1, 2, 5] : decades <= 4 ? [1, 3] : [1];
  for (let p = Math.floor(Math.log10(lo)); p <= Math.ceil(Math.log10(hi)); p++) {
    for (const m of mantissas) {
      const v = m * 10 ** p;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push(v);
    }
  }
  return ticks;
}

/**
 * Labels for a set of ticks: plain numbers, or thousands as "5k" for all of
 * them when the largest reaches 10,000 and every tick is a multiple of 1000
 * (so one axis never mixes "5000" and "10k").
 */
export function tickFormatter(ticks) {
  const thousands = Math.max(...ticks.map(Math.abs)) >= 10000 && ticks.every((v) => v % 1000 === 0);
  return (v) => (thousands && v !== 0 ? `${v / 1000}k` : String(Number(v.toPrecision(6))));
}

function extent(series, axis) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series) {
    for (const p of s.points) {
      if (Number.isFinite(p[axis])) {
        lo = Math.min(lo, p[axis]);
        hi = Math.max(hi, p[axis]);
      }
    }
  }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - 1, hi + 1];
  return [lo, hi];
}

/** ` name="value"` pairs; undefined and null values are left out, numbers rounded, text escaped. */
function attributes(a) {
  return Object.entries(a)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => ` ${k}="${escapeXml(typeof v === 'number' ? fixed(v) : v)}"`)
    .join('');
}

/** An SVG element, empty or holding escaped text. */
function el(name, attrs, text) {
  return text === undefined ? `<${name}${attributes(attrs)}/>` : `<${name}${attributes(attrs)}>${escapeXml(text)}</${name}>`;
}

/**
 * @typedef {object} Series
 * @property {string} name shown in the legend
 * @property {[number, number][]} points a point with a non-finite coordinate breaks the line
 * @property {string} [color] default: the next colour of PALETTE
 * @property {'solid'|'dashed'|'dotted'|'dashdot'} [dash='solid']
 * @property {boolean} [markers=false] a dot at every point
 * @property {number} [width=2] line width
 * @property {[number, number][]} [errorBars] per point, a vertical bar from the first y to the second
 * @property {number} [dx=0] pixels to shift the series right (or left), so error bars at the same x stay apart
 */

/**
 * One chart as an SVG group, `width` x `height` pixels including its title,
 * axis labels and legend.
 * @param {object} o
 * @param {Series[]} o.series
 * @param {string} [o.title]
 * @param {string} [o.xLabel]
 * @param {string} [o.yLabel]
 * @param {'linear'|'log'} [o.xScale='linear']
 * @param {[number, number]} [o.xDomain] default: the data's extent
 * @param {[number, number]} [o.yDomain] default: the data's extent, widened to round ticks
 * @param {number[]} [o.xTicks] default: round values
 * @param {number[]} [o.yTicks]
 * @param {(v: number) => string} [o.formatX] default: tickFormatter(xTicks)
 * @param {(v: number) => string} [o.formatY] default: tickFormatter(yTicks)
 * @param {number} [o.width=640]
 * @param {number} [o.height=400]
 * @param {boolean} [o.legend=true] false: no legend (panels() can draw one for all)
 * @returns {{width: number, height: number, body: string}}
 */
export function chart(o) {
  const { series, title = '', xLabel = '', yLabel = '', xScale = 'linear', width = 640, height = 400 } = o;
  const log = xScale === 'log';

  const [x0, x1] = o.xDomain ?? extent(series, 0);
  if (log && !(x0 > 0)) throw new RangeError(`chart(): a log x axis needs positive x values, the domain starts at ${x0}`);
  const xTicks = o.xTicks ?? (log ? logTicks(x0, x1) : niceTicks(x0, x1));
  const formatX = o.formatX ?? tickFormatter(xTicks);
  let [y0, y1] = o.yDomain ?? extent(series, 1);
  let yTicks = o.yTicks ?? niceTicks(y0, y1);
  if (!o.yDomain) {
    // Widen to the enclosing round ticks so the data never touches the frame.
    const step = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
    y0 = Math.min(y0, Math.floor(y0 / step + 1e-9) * step);
    y1 = Math.max(y1, Math.ceil(y1 / step - 1e-9) * step);
    yTicks = o.yTicks ?? niceTicks(y0, y1);
  }
  const formatY = o.formatY ?? tickFormatter(yTicks);

  const legend = o.legend !== false;
  const legendWidth = legend ? Math.ceil(Math.max(...series.map((s) => s.name.length)) * CHAR_WIDTH) + 44 : 0;
  const plot = { left: MARGIN.left, top: MARGIN.top };
  plot.width = width - MARGIN.left - MARGIN.right - legendWidth;
  plot.height = height - MARGIN.top - MARGIN.bottom;
  plot.right = plot.left + plot.width;
  plot.bottom = plot.top + plot.height;
  plot.centre = plot.left + plot.width / 2;
  const sx = log
    ? (v) => plot.left + (Math.log(v / x0) / Math.log(x1 / x0)) * plot.width
    : (v) => plot.left + ((v - x0) / (x1 - x0)) * plot.width;
  const sy = (v) => plot.bottom - ((v - y0) / (y1 - y0)) * plot.height;

  const out = [el('rect', { x: 0, y: 0, width, height, fill: 'white' })];
  if (title) out.push(el('text', { x: plot.centre, y: 20, 'text-anchor': 'middle', 'font-size': 14, 'font-weight': 'bold' }, title));

  // Grid and ticks.
  for (const v of yTicks) {
    out.push(el('line', { x1: plot.left, y1: sy(v), x2: plot.right, y2: sy(v), stroke: GRID }));
    out.push(el('text', { x: plot.left - 6, y: sy(v), 'text-anchor': 'end', 'dominant-baseline': 'middle', 'font-size': 11 }, formatY(v)));
  }
  for (const v of xTicks) {
    out.push(el('line', { x1: sx(v), y1: plot.top, x2: sx(v), y2: plot.bottom, stroke: GRID }));
    out.push(el('text', { x: sx(v), y: plot.bottom + 16, 'text-anchor': 'middle', 'font-size': 11 }, formatX(v)));
  }
  out.push(el('rect', { x: plot.left, y: plot.top, width: plot.width, height: plot.height, fill: 'none', stroke: '#333' }));
  if (xLabel) out.push(el('text', { x: plot.centre, y: height - 10, 'text-anchor': 'middle', 'font-size': 12 }, xLabel));
  if (yLabel) {
    const cy = fixed(plot.top + plot.height / 2);
    out.push(el('text', { x: 14, y: cy, 'text-anchor': 'middle', 'font-size': 12, transform: `rotate(-90 14 ${cy})` }, yLabel));
  }

  // Series, clipped to the plot area.
  const clip = `plot-area-${++clipIds}`;
  out.push(`<clipPath id="${clip}">${el('rect', { x: plot.left, y: plot.top, width: plot.width, height: plot.height })}</clipPath>`);
  out.push(`<g${attributes({ 'clip-path': `url(#${clip})`, fill: 'none', 'stroke-linejoin': 'round', 'stroke-linecap': 'round' })}>`);
  series.forEach((s, i) => {
    const { color, stroke } = style(s, i);
    const finite = ([x, y]) => Number.isFinite(x) && Number.isFinite(y);
    const px = (x) => sx(x) + (s.dx ?? 0);
    let d = '';
    let pen = 'M';
    for (const p of s.points) {
      if (!finite(p)) {
        pen = 'M';
        continue;
      }
      d += `${pen}${fixed(px(p[0]))},${fixed(sy(p[1]))}`;
      pen = 'L';
    }
    if (d) out.push(el('path', { d, ...stroke }));
    s.errorBars?.forEach(([lo, hi], j) => {
      const x = s.points[j][0];
      if (!Number.isFinite(x) || !Number.isFinite(lo) || !Number.isFinite(hi)) return;
      const bar = { stroke: color, 'stroke-width': 1.5 };
      out.push(el('line', { x1: px(x), y1: sy(lo), x2: px(x), y2: sy(hi), ...bar }));
      for (const y of [lo, hi]) out.push(el('line', { x1: px(x) - 3, y1: sy(y), x2: px(x) + 3, y2: sy(y), ...bar }));
    });
    if (s.markers) {
      for (const p of s.points.filter(finite)) out.push(el('circle', { cx: px(p[0]), cy: sy(p[1]), r: 3, fill: color, stroke: 'none' }));
    }
  });
  out.push('</g>');

  // Legend, outside the plot so it never hides data.
  if (legend) series.forEach((s, i) => out.push(legendEntry(s, i, plot.right + 14, plot.top + 8 + i * 18)));

  return { width, height, body: out.join('\n') };
}

function style(s, i) {
  const color = s.color ?? PALETTE[i % PALETTE.length];
  return { color, stroke: { stroke: color, 'stroke-width': s.width ?? 2, 'stroke-dasharray': DASHES[s.dash ?? 'solid'] } };
}

/** A series' line (and marker) and name, the line starting at (x, y); its width is legendEntryWidth(s). */
function legendEntry(s, i, x, y) {
  const { color, stroke } = style(s, i);
  const out = [el('line', { x1: x, y1: y, x2: x + 24, y2: y, ...stroke })];
  if (s.markers) out.push(el('circle', { cx: x + 12, cy: y, r: 3, fill: color }));
  out.push(el('text', { x: x + 30, y, 'dominant-baseline': 'middle', 'font-size': 12 }, s.name));
  return out.join('\n');
}
const legendEntryWidth = (s) => 30 + Math.ceil(s.name.length * CHAR_WIDTH) + 24;

/** A standalone SVG document of one chart (the options of chart()). */
export function lineChart(options) {
  return panels([chart(options)], { columns: 1 });
}

/**
 * Several charts in one SVG document, in a grid.
 * @param {{width: number, height: number, body: string}[]} charts from chart()
 * @param {{columns?: number, title?: string, legend?: Series[]}} [options] default: all in one row;
 *   `legend`: one row of entries under the title for charts drawn with `legend: false`
 */
export function panels(charts, { columns = charts.length, title = '', legend = [] } = {}) {
  const cellWidth = Math.max(...charts.map((c) => c.width));
  const cellHeight = Math.max(...charts.map((c) => c.height));
  const legendTop = title ? 28 : 0;
  const top = legendTop + (legend.length ? 26 : 0);
  const rows = Math.ceil(charts.length / columns);
  const width = cellWidth * Math.min(columns, charts.length);
  const height = top + cellHeight * rows;
  const root = { xmlns: 'http://www.w3.org/2000/svg', width, height, viewBox: `0 0 ${width} ${height}`, 'font-family': FONT, fill: '#222' };
  const out = [`<svg${attributes(root)}>`, el('rect', { x: 0, y: 0, width, height, fill: 'white' })];
  if (title) out.push(el('text', { x: width / 2, y: 20, 'text-anchor': 'middle', 'font-size': 15, 'font-weight': 'bold' }, title));
  let lx = (width - legend.reduce((sum, s) => sum + legendEntryWidth(s), 0)) / 2;
  legend.forEach((s, i) => {
    out.push(legendEntry(s, i, lx, legendTop + 13));
    lx += legendEntryWidth(s);
  });
  charts.forEach((c, i) => {
    const x = (i % columns) * cellWidth;
    const y = top + Math.floor(i / columns) * cellHeight;
    out.push(`<g transform="translate(${x} ${y})">`, c.body, '</g>');
  });
  out.push('</svg>', '');
  return out.join('\n');
}

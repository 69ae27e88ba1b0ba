// Canvas drawing for the demo: line/dot charts, the running-average picture, images and
// decision regions. No chart library: a few hundred points per frame at most.

const AXIS = '#98a2b3';
const GRID = '#eef1f5';
const TEXT = '#475467';

/** Sizes the canvas backing store to its CSS box and returns a context in CSS pixels. */
export function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

function niceTicks(lo, hi, count) {
  const span = hi - lo || 1;
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}

function format(v) {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 10000) return `${(v / 1000).toFixed(0)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(a >= 10 ? 0 : 1).replace(/\.0$/, '');
  return v.toPrecision(2).replace(/0+$/, '').replace(/\.$/, '');
}

/**
 * One plot in a rectangle of a prepared context.
 * series: [{points: [[x, y], ...], color, kind: 'line' | 'dots', label, width, dash, radius}]
 * (dash: a canvas line-dash pattern such as [5, 4]; solid when absent). yTicks: about how
 * many y gridlines.
 */
export function plot(ctx, rect, { series, title, yRange, xRange, yFormat = format, yTicks = 4 }) {
  ctx.font = '11px system-ui, sans-serif';
  ctx.textBaseline = 'alphabetic';
  // The legend goes right-aligned on the title's line where both fit with a gap between them,
  // else on a line of its own under the title (the plot moves down by that line).
  const labeled = series.filter((s) => s.label);
  const legendWidth = labeled.reduce((w, s) => w + ctx.measureText(s.label).width, 0) + 14 * Math.max(0, labeled.length - 1);
  const left = rect.x + 44;
  const right = rect.x + rect.width - 8;
  const titleEnd = title ? left + ctx.measureText(title).width : left;
  const ownLine = Boolean(title) && labeled.length > 0 && right - legendWidth < titleEnd + 16;
  const legendY = rect.y + (ownLine ? 24 : 11);
  const top = rect.y + (ownLine ? 31 : 18);
  const bottom = rect.y + rect.height - 20;
  let [x0, x1] = xRange ?? [Infinity, -Infinity];
  let [y0, y1] = yRange ?? [Infinity, -Infinity];
  for (const s of series) {
    for (const [x, y] of s.points) {
      if (!xRange) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
      }
      if (!yRange && Number.isFinite(y)) {
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
  }
  ctx.fillStyle = TEXT;
  ctx.textAlign = 'left';
  if (title) ctx.fillText(title, left, rect.y + 11);
  let lx = right;
  ctx.textAlign = 'right';
  for (const s of [...labeled].reverse()) {
    ctx.fillStyle = s.color;
    ctx.fillText(s.label, lx, legendY);
    lx -= ctx.measureText(s.label).width + 14;
  }
  if (!Number.isFinite(x0) || !Number.isFinite(y0)) {
    ctx.fillStyle = AXIS;
    ctx.textAlign = 'center';
    ctx.fillText('no data yet', (left + right) / 2, (top + bottom) / 2);
    return;
  }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) {
    y0 -= 0.5;
    y1 += 0.5;
  } else if (!yRange) {
    const pad = (y1 - y0) * 0.06;
    y0 -= pad;
    y1 += pad;
  }
  const sx = (x) => left + ((x - x0) / (x1 - x0)) * (right - left);
  const sy = (y) => bottom - ((y - y0) / (y1 - y0)) * (bottom - top);

  ctx.strokeStyle = GRID;
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.fillStyle = TEXT;
  for (const t of niceTicks(y0, y1, yTicks)) {
    const y = Math.round(sy(t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(right, y);
    ctx.stroke();
    ctx.fillText(yFormat(t), left - 5, y + 3.5);
  }
  ctx.textAlign = 'center';
  for (const t of niceTicks(x0, x1, 5)) ctx.fillText(format(t), sx(t), bottom + 14);
  ctx.strokeStyle = AXIS;
  ctx.beginPath();
  ctx.moveTo(left + 0.5, top);
  ctx.lineTo(left + 0.5, bottom + 0.5);
  ctx.lineTo(right, bottom + 0.5);
  ctx.stroke();

  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top - 2, right - left, bottom - top + 4);
  ctx.clip();
  for (const s of series) {
    ctx.strokeStyle = ctx.fillStyle = s.color;
    if (s.kind === 'dots') {
      for (const [x, y] of s.points) {
        ctx.beginPath();
        ctx.arc(sx(x), sy(y), s.radius ?? 2, 0, 2 * Math.PI);
        ctx.fill();
      }
    } else {
      ctx.lineWidth = s.width ?? 1.6;
      ctx.setLineDash(s.dash ?? []);
      ctx.beginPath();
      s.points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(sx(x), sy(y)) : ctx.lineTo(sx(x), sy(y))));
      ctx.stroke();
    }
  }
  ctx.restore();
}

/** Draws a 28 x 28 uint8 image into a 28 x 28 canvas. */
export function drawImage(canvas, pixels) {
  canvas.width = 28;
  canvas.height = 28;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = pixels[i];
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

export const CLASS_COLORS = [
  [47, 111, 222],
  [224, 103, 43],
  [46, 160, 90],
];

/**
 * Decision regions of a 2-D classifier: probabilities on a grid (row-major, grid x grid,
 * classes per cell) blended into class colours, then the points on top.
 */
export function drawRegions(canvas, probabilities, grid, classes, points, extent) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  if (probabilities) {
    const cells = new OffscreenCanvas(grid, grid);
    const cctx = cells.getContext('2d');
    const image = cctx.createImageData(grid, grid);
    for (let i = 0; i < grid * grid; i++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let c = 0; c < classes; c++) {
        const p = probabilities[i * classes + c];
        r += p * CLASS_COLORS[c][0];
        g += p * CLASS_COLORS[c][1];
        b += p * CLASS_COLORS[c][2];
      }
      // Pale: mix with white so the points stay visible.
      image.data[4 * i] = 255 - 0.45 * (255 - r);
      image.data[4 * i + 1] = 255 - 0.45 * (255 - g);
      image.data[4 * i + 2] = 255 - 0.45 * (255 - b);
      image.data[4 * i + 3] = 255;
    }
    cctx.putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(cells, 0, 0, width, height);
  }
  const [lo, hi] = extent;
  for (const { x, y, label } of points) {
    const px = ((x - lo) / (hi - lo)) * width;
    const py = height - ((y - lo) / (hi - lo)) * height;
    ctx.fillStyle = `rgb(${CLASS_COLORS[label].join(',')})`;
    ctx.beginPath();
    ctx.arc(px, py, 2.2, 0, 2 * Math.PI);
    ctx.fill();
  }
}

/**
 * Small images in a grid on one canvas: `count` images of h x w values (row-major, one after
 * another in `values`), each cell `scale` pixels per value with a gap between cells. `color`
 * maps a value to [r, g, b].
 */
function drawTiles(canvas, values, { count, h, w, columns, scale, gap = 3, color }) {
  const rows = Math.ceil(count / columns);
  const width = columns * w * scale + (columns - 1) * gap;
  const height = rows * h * scale + (rows - 1) * gap;
  canvas.width = width;
  canvas.height = height;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, width, height);
  for (let k = 0; k < count; k++) {
    const x0 = (k % columns) * (w * scale + gap);
    const y0 = Math.floor(k / columns) * (h * scale + gap);
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        ctx.fillStyle = `rgb(${color(values[(k * h + i) * w + j]).join(',')})`;
        ctx.fillRect(x0 + j * scale, y0 + i * scale, scale, scale);
      }
    }
  }
}

/**
 * Conv filters (weight [filters, inChannels, kh, kw], the first input channel of each) as small
 * squares: orange for positive weights, blue for negative, white for 0, on one scale for all.
 */
export function drawFilters(canvas, weight, [filters, inChannels, kh, kw]) {
  const values = new Float32Array(filters * kh * kw);
  for (let f = 0; f < filters; f++) values.set(weight.subarray(f * inChannels * kh * kw, (f * inChannels + 1) * kh * kw), f * kh * kw);
  const top = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;
  const [pos, neg] = [CLASS_COLORS[1], CLASS_COLORS[0]];
  const color = (v) => {
    const t = Math.min(1, Math.abs(v) / top);
    const c = v >= 0 ? pos : neg;
    return c.map((x) => Math.round(255 - t * (255 - x)));
  };
  drawTiles(canvas, values, { count: filters, h: kh, w: kw, columns: Math.min(filters, 8), scale: Math.max(4, Math.round(48 / kh)), gap: 8, color });
}

/** Feature maps (channels x h x w) in grey, black at the smallest value of all, white at the largest. */
export function drawFeatureMaps(canvas, values, { c, h, w }) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const span = hi - lo || 1;
  const color = (v) => {
    const g = Math.round((255 * (v - lo)) / span);
    return [g, g, g];
  };
  drawTiles(canvas, values, { count: c, h, w, columns: Math.min(c, 8), scale: Math.max(1, Math.round(56 / h)), gap: 8, color });
}

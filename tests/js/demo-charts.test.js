// The demo's chart layout (web/demo/charts.js plot), on a recording canvas context whose text
// is 6 px per character: the legend never overlaps the title (the subtitle of the loss chart
// was drawn under its legend), and keeps the title's line where there is room.
import { plot } from '../../web/demo/charts.js';

/** A 2-D context that records fillText calls as boxes; everything else does nothing. */
function recordingContext() {
  const texts = [];
  const ctx = new Proxy(
    {
      texts,
      textAlign: 'left',
      measureText: (text) => ({ width: 6 * text.length }),
      fillText(text, x, y) {
        const width = 6 * text.length;
        const x0 = this.textAlign === 'right' ? x - width : this.textAlign === 'center' ? x - width / 2 : x;
        texts.push({ text, x0, x1: x0 + width, y });
      },
    },
    { get: (target, key) => (key in target ? target[key] : () => {}), set: (target, key, value) => ((target[key] = value), true) },
  );
  return ctx;
}

const overlaps = (a, b) => a.y === b.y && a.x0 < b.x1 && b.x0 < a.x1;
const series = [
  { points: [[0, 1], [1, 2]], color: '#000', kind: 'line', label: 'latest batch loss' },
  { points: [[0, 1], [1, 1.5]], color: '#111', kind: 'line', label: 'smoothed' },
];

test.each([
  ['a long title in a narrow chart: the legend moves under it', 'cross-entropy, mean over the mini-batches since the last update', 420, true],
  ['a short title: the legend stays on its line', 'loss', 420, false],
])('%s', (_, title, width, ownLine) => {
  const ctx = recordingContext();
  plot(ctx, { x: 0, y: 0, width, height: 170 }, { title, series });
  const titleBox = ctx.texts.find((t) => t.text === title);
  const legend = ctx.texts.filter((t) => series.some((s) => s.label === t.text));
  expect(legend).toHaveLength(2);
  for (const box of legend) {
    expect(overlaps(box, titleBox)).toBe(false);
    expect(box.x0).toBeGreaterThanOrEqual(0);
    expect(box.x1).toBeLessThanOrEqual(width);
    expect(box.y !== titleBox.y).toBe(ownLine);
  }
});

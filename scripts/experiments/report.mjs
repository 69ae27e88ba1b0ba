// Node side of the experiment scripts: describing the machine and writing
// results into docs/ without touching the hand-written text there.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

/** "2 x Intel(R) Xeon(R) ..., Node v20.x, linux x64": the machine, for the docs. */
export function machine() {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}, ${os.platform()} ${os.arch()}`;
}

export const seconds = (ms) => `${(ms / 1000).toFixed(0)} s`;

const BEGIN = '<!-- results: written by the script; edit outside these markers -->';
const END = '<!-- end of results -->';

/**
 * Writes `results` into the markdown file at `path` between the results
 * markers, keeping the hand-written text around them; creates the file from
 * `skeleton` (which must contain the marker pair) when it does not exist yet.
 */
export function writeResults(path, results, skeleton) {
  const block = `${BEGIN}\n${results.trim()}\n${END}`;
  const text = existsSync(path) ? readFileSync(path, 'utf8') : skeleton(`${BEGIN}\n${END}`);
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${path}: the results markers are missing; restore them or delete the file`);
  writeFileSync(path, text.slice(0, start) + block + text.slice(end + END.length));
}

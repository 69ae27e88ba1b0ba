// Packs the package as npm would publish it (`npm pack`, which runs the prepack build when
// web/dist is missing or older than the C++ sources) into build/consumers/.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CONSUMERS_DIR = join(ROOT, 'build', 'consumers');

/** npm pack's JSON report; lifecycle scripts may print before it, so read from the last '[' line. */
function packReport(stdout) {
  const start = stdout.lastIndexOf('\n[');
  return JSON.parse(start === -1 ? stdout : stdout.slice(start + 1))[0];
}

/**
 * Packs the package into `destination` (build/consumers/ by default).
 * @returns {string} the tarball's absolute path
 */
export function packPackage(destination = CONSUMERS_DIR) {
  mkdirSync(destination, { recursive: true });
  const stdout = execFileSync('npm', ['pack', '--json', '--pack-destination', destination], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return join(destination, packReport(stdout).filename);
}

/** What `npm pack --dry-run --json` would put in the tarball: {files: [{path, size}], size, unpackedSize}. */
export function packedFileList() {
  const stdout = execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return packReport(stdout);
}

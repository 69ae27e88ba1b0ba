// Packs the package as a user's `npm install bnwasm` would receive it: `npm pack` (its prepack
// step builds web/dist) into build/consumers/. Shared by the consumer suites.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const consumersDir = path.join(root, 'build/consumers');

let packed = null;

/**
 * Runs `npm pack` once per process and returns the tarball's absolute path,
 * build/consumers/<name>-<version>.tgz. Throws with npm's output if packing fails.
 */
export function packPackage() {
  if (packed) return packed;
  const { name, version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  const tarball = path.join(consumersDir, `${name}-${version}.tgz`);
  mkdirSync(consumersDir, { recursive: true });
  rmSync(tarball, { force: true });
  try {
    execFileSync('npm', ['pack', '--pack-destination', consumersDir, '--silent'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    throw new Error(`npm pack failed (exit ${error.status}):\n${error.stdout}${error.stderr}`);
  }
  packed = tarball;
  return packed;
}

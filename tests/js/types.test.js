// The shipped declarations compile against the README's usage under --strict,
// and reject misuse (tests/types/usage.ts holds @ts-expect-error lines, which
// fail the compile if the misuse were accepted).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('index.d.ts type-checks the API tour', () => {
  const run = () =>
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tests/types/tsconfig.json'], {
      cwd: root,
      encoding: 'utf8',
      stdio: 'pipe',
    });
  expect(run).not.toThrow();
});

test('package.json points types and exports at the shipped files', async () => {
  const { readFileSync, existsSync } = await import('node:fs');
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  expect(pkg.exports['.'].types).toBe('./web/src/index.d.ts');
  expect(existsSync(new URL(`../../${pkg.exports['.'].types}`, import.meta.url))).toBe(true);
  expect(existsSync(new URL(`../../${pkg.exports['.'].default}`, import.meta.url))).toBe(true);
  for (const file of [pkg.exports['./interop'].types, pkg.exports['./interop'].default]) {
    expect(existsSync(new URL(`../../${file}`, import.meta.url))).toBe(true);
  }
});

// The README's API tour must run as written, through the package name.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('the API tour in README.md runs and prints what it promises', () => {
  const readme = readFileSync(`${root}/README.md`, 'utf8');
  const tour = readme.match(/## API tour[\s\S]*?```js\n([\s\S]*?)```/)[1];
  // In the repository root, so `import ... from 'bnwasm'` resolves through package.json's exports.
  const file = `${root}/.readme-tour.mjs`;
  writeFileSync(file, tour);
  let output;
  try {
    output = execFileSync(process.execPath, [file], { cwd: root, encoding: 'utf8' });
  } finally {
    rmSync(file, { force: true });
  }
  expect(output).toMatch(/^first loss \d\.\d{3} last epoch \d\.\d{3}$/m);
  expect(output).toMatch(/^example 0: class 0 label 0$/m);
  expect(output).toMatch(/accuracy: (0\.9\d*|1)/);
  expect(output).toMatch(/^gamma\[0\] = .*, beta\[0\] = .*, runningMean\[0\] = .*, runningVariance\[0\] = /m);
  expect(output).toMatch(/^same after load: true$/m);
});

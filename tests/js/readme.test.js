// The README's API tour must run as written, through the package name.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs the first js block after a README heading, from the repository root so 'bnwasm' resolves. */
function runBlock(heading) {
  const readme = readFileSync(`${root}/README.md`, 'utf8');
  const block = readme.match(new RegExp(`## ${heading}[\\s\\S]*?\`\`\`js\\n([\\s\\S]*?)\`\`\``))[1];
  const file = `${root}/.readme-block.mjs`;
  writeFileSync(file, block);
  try {
    return execFileSync(process.execPath, [file], { cwd: root, encoding: 'utf8' });
  } finally {
    rmSync(file, { force: true });
  }
}

test('the API tour in README.md runs and prints what it promises', () => {
  const output = runBlock('API tour');
  expect(output).toMatch(/^first loss \d\.\d{3} last epoch \d\.\d{3}$/m);
  expect(output).toMatch(/^example 0: class 0 label 0$/m);
  expect(output).toMatch(/accuracy: (0\.9\d*|1)/);
  expect(output).toMatch(/^gamma\[0\] = .*, beta\[0\] = .*, runningMean\[0\] = .*, runningVariance\[0\] = /m);
  expect(output).toMatch(/^same after load: true$/m);
});

test('the worker block in README.md runs and prints what it promises', () => {
  const output = runBlock('Training in a worker');
  expect(output).toMatch(/^class 0 progress messages true$/m);
  expect(output).toMatch(/^same as in the worker: true$/m);
});

test('the residual network block in README.md runs and prints what it promises', () => {
  const output = runBlock('Graphs: residual networks');
  expect(output).toMatch(/^conv2d 8x28x28, batchNorm 8x28x28, relu 8x28x28, .*add 8x28x28, relu 8x28x28, globalAvgPool 8, dense 10$/m);
  expect(output).toMatch(/^\[ 2, 7 \] 10$/m);
});

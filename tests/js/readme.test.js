// The README's examples must run as written, through the package name (the torchvision one with
// its Python step first, under Debian's PyTorch).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Runs the first block of the language after a README heading and returns what it printed. A js
 * block is written into the repository root so 'bnwasm' resolves, and runs in cwd (by default the
 * root); a python block runs in cwd under /usr/bin/python3 (Debian's torch) with
 * scripts/pytorch/ on PYTHONPATH, as the README says.
 */
function runBlock(heading, { lang = 'js', cwd = root } = {}) {
  const readme = readFileSync(`${root}/README.md`, 'utf8');
  const block = readme.match(new RegExp(`## ${heading}[\\s\\S]*?\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``))[1];
  const file = lang === 'js' ? `${root}/.readme-block.mjs` : join(cwd, '.readme-block.py');
  writeFileSync(file, block);
  try {
    if (lang === 'js') return execFileSync(process.execPath, [file], { cwd, encoding: 'utf8' });
    return execFileSync('/usr/bin/python3', [file], { cwd, encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(root, 'scripts', 'pytorch') } });
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

test('the torchvision blocks in README.md run: PyTorch writes resnet18 as a config and safetensors, the worker fine-tunes a new head with batch norm frozen', () => {
  const heading = 'A torchvision model, fine-tuned in the worker';
  const dir = mkdtempSync(join(tmpdir(), 'bnwasm-readme-'));
  try {
    runBlock(heading, { lang: 'python', cwd: dir });
    const output = runBlock(heading, { cwd: dir });
    const [, first, last, accuracy] = output.match(/^loss (\d\.\d{3}) -> (\d\.\d{3}) accuracy ([\d.]+)$/m);
    expect(Number(last)).toBeLessThan(Number(first) / 2);
    expect(Number(accuracy)).toBeGreaterThan(0.8);
    expect(output).toMatch(/^running averages as imported: true$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);

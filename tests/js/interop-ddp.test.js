// The DDP path on a small slice: scripts/pytorch/train_ddp.py trains the default
// Fashion-MNIST network with DistributedDataParallel (2 processes, gloo on CPU,
// 300 steps on 12,000 training examples) and exports ONNX and safetensors;
// scripts/pytorch/import_ddp.mjs imports both, which must be identical, and
// predicts the 10,000 test examples one at a time: the accuracy must equal
// PyTorch's eval accuracy to 0.1 point and every probability PyTorch's float64
// output to 1e-5 (the script exits 1 otherwise). Then it refreshes the
// population statistics and saves a model that loadNetwork opens.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNetwork } from 'bnwasm';

const ROOT = new URL('../../', import.meta.url).pathname;

test('torchrun DDP -> ONNX + safetensors -> bnwasm', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bnwasm-ddp-'));
  try {
    // --redirects/--tee: Debian's torchrun on Python 3.11 cannot parse their default
    // "0" (see docs/interop.md); 2 keeps stdout on the console.
    const train = execFileSync(
      'torchrun',
      ['--nproc_per_node=2', '--redirects', '2', '--tee', '2', join(ROOT, 'scripts/pytorch/train_ddp.py'),
        '--out', dir, '--steps', '300', '--train-limit', '12000'],
      { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    expect(train).toMatch(/ddp: 2 processes, backend gloo/);
    expect(train).toMatch(/step 300\/300/);
    const saved = join(dir, 'model.bnwasm');
    const out = execFileSync('node', [join(ROOT, 'scripts/pytorch/import_ddp.mjs'), dir, '--recompute-statistics', '--save', saved], {
      encoding: 'utf8',
    });
    console.log(`${train.split('\n').filter((l) => /accuracy|ddp:/.test(l)).join('\n')}\n${out}`);
    expect(out).toMatch(/ONNX and safetensors imports identical: true/);
    const [, torchAcc, bnwasmAcc] = out.match(/PyTorch eval ([\d.]+)%\s+bnwasm predict\(\) one at a time ([\d.]+)%/);
    expect(Math.abs(Number(torchAcc) - Number(bnwasmAcc))).toBeLessThanOrEqual(0.1);
    expect(Number(torchAcc)).toBeGreaterThan(75); // it learned something in 300 steps
    const worst = Number(out.match(/probabilities: ([\d.e+-]+)/)[1]);
    expect(worst).toBeLessThanOrEqual(1e-5);
    const net = await loadNetwork(readFileSync(saved));
    expect(net.config.layers.map((l) => l.type).join()).toBe('dense,batchNorm,relu,dense,batchNorm,relu,dense');
    net.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 600000);

// The torchvision references (resnet18, mobilenet_v2) are too large to commit: a ResNet-18 is 44 MB
// of float32. make_torchvision_fixtures.py generates them, deterministically, into
// build/torchvision/ (ignored); this module runs it when its output is missing or the generator
// changed, and holds what it wrote to the sha256 sums committed in tests/fixtures/torchvision.sha256.
//
//   const dir = ensureTorchvisionFixtures('training');   // or 'onnx' (the torch.onnx.export files)
//
// One generation at a time: a process that finds another generating waits for it (a lock
// folder holding the generator's pid). Files are written to a temporary folder and renamed into
// place, the stamp last, so a reader never sees half a generation.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TORCHVISION_DIR = join(root, 'build', 'torchvision');
export const MANIFEST = join(root, 'tests', 'fixtures', 'torchvision.sha256');
const GENERATOR = join(root, 'scripts', 'pytorch', 'make_torchvision_fixtures.py');
// What the generator's output depends on besides torch itself.
const SOURCES = ['make_torchvision_fixtures.py', 'bnwasm_graph.py', 'safetensors_roundtrip.py'].map((f) => join(root, 'scripts', 'pytorch', f));
const PARTS = { training: (f) => /\.(json|safetensors)$/.test(f), onnx: (f) => f.endsWith('.onnx') };

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** The committed manifest: file name -> sha256. */
export function manifest() {
  return new Map(
    readFileSync(MANIFEST, 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(/\s+/).reverse()),
  );
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Runs fn holding the lock folder; waits while a live process holds it, takes over a dead one's. */
function locked(fn) {
  const lock = join(TORCHVISION_DIR, '.lock');
  mkdirSync(TORCHVISION_DIR, { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let pid = NaN;
      try {
        pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
      } catch {
        // created but not yet written: wait
      }
      if (Number.isInteger(pid) && !alive(pid)) rmSync(lock, { recursive: true, force: true });
      else sleep(1000);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * The folder holding the part's files ('training': the safetensors and JSON of both models and
 * their training cases; 'onnx': the torch.onnx.export files, which need the training part), made
 * or remade when missing or when the generator changed, each file's sha256 checked against the
 * manifest. Throws, naming the files, when they differ: the generator (or torch) computes something
 * else than when the manifest was written (`make_torchvision_fixtures.py DIR --write-manifest`
 * after an intended change). Generating takes a few minutes on this project's 2-core machine.
 */
export function ensureTorchvisionFixtures(part = 'training', { log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  if (!(part in PARTS)) throw new RangeError(`ensureTorchvisionFixtures(): part must be training or onnx, got ${part}`);
  const expected = new Map([...manifest()].filter(([f]) => PARTS[part](f)));
  const stamp = sha256(SOURCES.map((f) => readFileSync(f)).join('\0'));
  const stampFile = (p) => join(TORCHVISION_DIR, `${p}.stamp`);
  const fresh = (p) => existsSync(stampFile(p)) && readFileSync(stampFile(p), 'utf8') === stamp;
  const complete = () => fresh(part) && [...expected.keys()].every((f) => existsSync(join(TORCHVISION_DIR, f)));
  if (!complete()) {
    locked(() => {
      if (complete()) return; // another process made them while this one waited
      for (const p of part === 'onnx' ? ['training', 'onnx'] : ['training']) {
        if (fresh(p) && [...manifest().keys()].filter(PARTS[p]).every((f) => existsSync(join(TORCHVISION_DIR, f)))) continue;
        const tmp = join(TORCHVISION_DIR, `.tmp-${process.pid}`);
        rmSync(tmp, { recursive: true, force: true });
        mkdirSync(tmp);
        // The onnx part reads the initial weights the training part wrote.
        if (p === 'onnx') for (const f of readdirSync(TORCHVISION_DIR)) if (f.endsWith('-initial.safetensors')) writeFileSync(join(tmp, f), readFileSync(join(TORCHVISION_DIR, f)));
        log(`torchvision fixtures: generating the ${p} files (scripts/pytorch/make_torchvision_fixtures.py; a few minutes)`);
        const started = performance.now();
        execFileSync('/usr/bin/python3', [GENERATOR, tmp, '--part', p], { stdio: ['ignore', 'pipe', 'inherit'] });
        for (const f of readdirSync(tmp)) if (PARTS[p](f)) renameSync(join(tmp, f), join(TORCHVISION_DIR, f));
        rmSync(tmp, { recursive: true, force: true });
        writeFileSync(stampFile(p), stamp);
        log(`torchvision fixtures: ${p} files made in ${((performance.now() - started) / 1000).toFixed(0)} s`);
      }
    });
  }
  const wrong = [...expected].filter(([f, hash]) => sha256(readFileSync(join(TORCHVISION_DIR, f))) !== hash).map(([f]) => f);
  if (wrong.length > 0) {
    throw new Error(
      `torchvision fixtures: ${wrong.join(', ')} in ${TORCHVISION_DIR} differ from ${MANIFEST}: the generator computes something else ` +
        'than when the manifest was written. If that change is intended, run /usr/bin/python3 scripts/pytorch/make_torchvision_fixtures.py ' +
        `${TORCHVISION_DIR} --write-manifest and commit the manifest.`,
    );
  }
  return TORCHVISION_DIR;
}

// Mutation fuzzing of the interop readers (importONNX, loadSafetensors,
// importTfjsLayers), seeded and deterministic. Each mutated input must either
// import (a Network, then disposed) or be refused with ModelFormatError, and
// leave no network behind: any other exception, or a live network count that
// grows, is a finding. Used by tests/js/interop-fuzz.test.js (a fixed count) and
// by `node tests/fuzz/interop-fuzz.mjs SECONDS` for longer runs.
import { readFileSync, readdirSync } from 'node:fs';
import { createNetwork, memoryUsage, ModelFormatError } from '../../web/src/index.node.js';
import { importONNX, importTfjsLayers, loadSafetensors } from '../../web/src/interop/index.node.js';
import { rng } from '../../web/demo/experiments/common.js';

const CONFIG = {
  inputSize: 3,
  layers: [{ type: 'dense', units: 4, useBias: false }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'dense', units: 2 }],
};
// A small conv network: conv + per-channel batch norm, pooling, an implicit flatten.
const CONV_CONFIG = {
  inputShape: [2, 5, 4],
  layers: [
    { type: 'conv2d', filters: 3, kernelSize: 2, padding: 1, useBias: false },
    { type: 'batchNorm' },
    { type: 'relu' },
    { type: 'maxPool2d', poolSize: 2 },
    { type: 'dense', units: 2 },
  ],
};

/** Valid inputs of each reader: the committed torch ONNX fixtures and files bnwasm writes. */
export async function seeds() {
  const dir = new URL('../fixtures/onnx/', import.meta.url);
  const onnx = readdirSync(dir)
    .filter((f) => f.endsWith('.onnx') && f.includes('opset15'))
    .map((f) => new Uint8Array(readFileSync(new URL(f, dir))));
  const safetensors = [];
  const tfjs = [];
  for (const config of [CONFIG, CONV_CONFIG]) {
    const net = await createNetwork(config);
    net.trainBatch(new Float32Array(4 * net.inputSize).map((_, i) => Math.sin(i)), new Int32Array([0, 1, 0, 1]));
    onnx.push(net.toONNX(), net.toONNX({ fold: true, opset: 13 }));
    safetensors.push({ bytes: net.toSafetensors(), config });
    const { modelJson, weightData } = net.toTfjsLayers();
    tfjs.push({ text: JSON.stringify(modelJson), weightData: new Uint8Array(weightData) });
    net.dispose();
  }
  return { onnx, safetensors, tfjs };
}

// One random edit of a byte string: flip bits, overwrite, insert, delete, truncate,
// duplicate a span, or set a byte to an edge value.
function mutate(bytes, random) {
  const out = Array.from(bytes);
  const edits = 1 + Math.floor(random() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(random() * Math.max(out.length, 1));
    const kind = Math.floor(random() * 7);
    if (kind === 0) out[at] ^= 1 << Math.floor(random() * 8);
    else if (kind === 1) out[at] = Math.floor(random() * 256);
    else if (kind === 2) out.splice(at, 0, Math.floor(random() * 256));
    else if (kind === 3) out.splice(at, 1 + Math.floor(random() * 8));
    else if (kind === 4) out.length = at;
    else if (kind === 5) out.splice(at, 0, ...out.slice(Math.floor(random() * out.length), Math.floor(random() * out.length)).slice(0, 64));
    else out[at] = [0, 0x7f, 0x80, 0xff][Math.floor(random() * 4)];
  }
  return Uint8Array.from(out.filter((v) => v !== undefined));
}

// Structure-aware edits of model.json: change a number, a string or drop a key.
function mutateJson(text, random) {
  const model = JSON.parse(text);
  const paths = [];
  const walk = (v, path) => {
    if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) walk(v[k], [...path, k]);
    paths.push(path);
  };
  walk(model, []);
  const path = paths[Math.floor(random() * paths.length)];
  if (path.length === 0) return text.slice(0, Math.floor(random() * text.length));
  const parent = path.slice(0, -1).reduce((o, k) => o[k], model);
  const key = path[path.length - 1];
  const choices = [undefined, null, -1, 0, 1e9, 2.5, 'relu', 'x', [], {}, [null, 3]];
  const pick = choices[Math.floor(random() * choices.length)];
  if (pick === undefined) delete parent[key];
  else parent[key] = pick;
  return JSON.stringify(model);
}

/**
 * Runs `runs` mutated inputs per reader. Returns counts of each outcome;
 * throws on a finding with the reader, the run and the error.
 */
export async function fuzzInterop({ runs = 300, seed = 1, deadline = Infinity } = {}) {
  const s = await seeds();
  const random = rng(seed);
  const baseline = (await memoryUsage()).liveNetworks;
  const counts = { imported: 0, refused: 0 };
  const attempt = async (reader, run, f) => {
    let net = null;
    try {
      net = await f();
      counts.imported++;
    } catch (e) {
      if (!(e instanceof ModelFormatError)) {
        throw new Error(`${reader} run ${run} (seed ${seed}): ${e?.name}: ${e?.message}\n${e?.stack}`);
      }
      counts.refused++;
    } finally {
      net?.dispose();
    }
    const live = (await memoryUsage()).liveNetworks;
    if (live !== baseline) throw new Error(`${reader} run ${run} (seed ${seed}): ${live - baseline} networks left alive`);
  };
  for (let run = 0; run < runs && Date.now() < deadline; run++) {
    const onnx = mutate(s.onnx[run % s.onnx.length], random);
    await attempt('importONNX', run, () => importONNX(onnx));
    const { bytes, config } = s.safetensors[run % s.safetensors.length];
    const st = mutate(bytes, random);
    await attempt('loadSafetensors', run, () => loadSafetensors(st, config));
    const tf = s.tfjs[Math.floor(run / 2) % s.tfjs.length];
    if (run % 2 === 0) {
      const text = mutateJson(tf.text, random);
      await attempt('importTfjsLayers', run, () => importTfjsLayers(text, tf.weightData));
    } else {
      const data = mutate(tf.weightData, random);
      await attempt('importTfjsLayers', run, () => importTfjsLayers(tf.text, data));
    }
  }
  return counts;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const seconds = Number(process.argv[2] ?? 60);
  const counts = await fuzzInterop({ runs: Infinity, seed: Date.now() & 0xffff, deadline: Date.now() + seconds * 1000 });
  console.log(`interop fuzz: ${counts.imported} imported, ${counts.refused} refused with ModelFormatError, no other outcome`);
}

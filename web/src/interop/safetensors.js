// PyTorch weights in the safetensors format: an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw
// little-endian tensor bytes. Names are those of model.state_dict(): a named layer is
// the module of that name, the others the modules of an nn.Sequential built layer by
// layer from the same config (common.js torchLayout). The tensors, their shapes and
// their PyTorch names are the core's (network.layers, describeNetwork).
import { ModelFormatError, describe } from '../errors.js';
import { batchesTracked } from '../network.js';
import { asBytes, buildNetwork, stateDictName, torchLayout } from './common.js';
import { describeNetwork } from '../config.js';

const DTYPE_BYTES = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 };
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
// Header sizes above this are refused before parsing (the format's own limit).
const MAX_HEADER = 100_000_000;

function float16ToFloat(h) {
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** The header and a reader for each tensor of safetensors bytes: values() is a Float32Array (F32), a
 * Float64Array (F64) or an array of numbers. */
export function readSafetensors(bytes, fn) {
  if (bytes.length < 8) throw new ModelFormatError(`${fn}(): ${bytes.length} bytes is too short for a safetensors file (8-byte header length)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER, bytes.length - 8))) {
    throw new ModelFormatError(`${fn}(): the header length says ${headerLength} bytes, the file has ${bytes.length - 8} after it`);
  }
  const n = Number(headerLength);
  let header;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new ModelFormatError(`${fn}(): the header is not valid UTF-8 JSON (${e.message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new ModelFormatError(`${fn}(): the header must be a JSON object, got ${describe(header)}`);
  }
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const tensors = new Map();
  const spans = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const where = `${fn}(): tensor '${name}'`;
    if (entry === null || typeof entry !== 'object') throw new ModelFormatError(`${where} has no {dtype, shape, data_offsets}`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!(dtype in DTYPE_BYTES)) throw new ModelFormatError(`${where}: dtype ${describe(dtype)} is not supported (F32, F64, F16, BF16, I64, I32)`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ModelFormatError(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(Number.isSafeInteger) || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength) {
      throw new ModelFormatError(`${where}: data_offsets ${JSON.stringify(offsets)} do not lie within the ${dataLength} data bytes`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    if (offsets[1] - offsets[0] !== count * DTYPE_BYTES[dtype]) {
      throw new ModelFormatError(`${where}: shape [${shape}] of ${dtype} needs ${count * DTYPE_BYTES[dtype]} bytes, data_offsets give ${offsets[1] - offsets[0]}`);
    }
    spans.push({ name, start: offsets[0], end: offsets[1] });
    const at = dataStart + offsets[0];
    // F32 and F64 are copied out whole (a ResNet-18 is 11 million values; one call per value
    // took seconds); the file is little-endian, as is every host wasm runs on.
    const Whole = LITTLE_ENDIAN ? { F32: Float32Array, F64: Float64Array }[dtype] : undefined;
    if (Whole) {
      tensors.set(name, { dtype, shape, values: () => new Whole(Uint8Array.prototype.slice.call(bytes, at, at + count * DTYPE_BYTES[dtype]).buffer) });
      continue;
    }
    const read = {
      F32: (k) => view.getFloat32(at + 4 * k, true),
      F64: (k) => view.getFloat64(at + 8 * k, true),
      F16: (k) => float16ToFloat(view.getUint16(at + 2 * k, true)),
      BF16: (k) => new Float32Array(new Uint32Array([view.getUint16(at + 2 * k, true) << 16]).buffer)[0],
      I64: (k) => Number(view.getBigInt64(at + 8 * k, true)),
      I32: (k) => view.getInt32(at + 4 * k, true),
    }[dtype];
    tensors.set(name, { dtype, shape, values: () => Array.from({ length: count }, (_, k) => read(k)) });
  }
  checkTiling(spans, dataLength, fn);
  return { metadata: header.__metadata__, tensors };
}

/**
 * The tensors' data_offsets must tile the data bytes exactly, as the format's reference reader
 * requires: in offset order each tensor starts where the one before it ends, the first at 0,
 * the last at the end of the file. Overlapping tensors would share bytes; a hole hides bytes
 * that no tensor accounts for. spans: [{name, start, end}], each already within the data.
 */
function checkTiling(spans, dataLength, fn) {
  const sorted = [...spans].sort((a, b) => a.start - b.start || a.end - b.end);
  const at = (s) => `'${s.name}' [${s.start}, ${s.end})`;
  let before = null;
  for (const span of sorted) {
    const end = before ? before.end : 0;
    if (span.start < end) throw new ModelFormatError(`${fn}(): tensors ${at(before)} and ${at(span)} overlap in data_offsets`);
    if (span.start > end) {
      throw new ModelFormatError(`${fn}(): data bytes [${end}, ${span.start}) ${before ? `between tensors ${at(before)} and ${at(span)}` : `before tensor ${at(span)}`} belong to no tensor`);
    }
    before = span;
  }
  const end = before ? before.end : 0;
  if (end !== dataLength) {
    throw new ModelFormatError(`${fn}(): data bytes [${end}, ${dataLength}) ${before ? `after tensor ${at(before)}` : '(the file has no tensors)'} belong to no tensor`);
  }
}

/** safetensors bytes of named tensors: [{name, dtype: 'F32'|'I64', shape, bytes}]. */
export function writeSafetensors(entries, metadata) {
  const header = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const e of entries) {
    out.set(e.bytes, at);
    at += e.bytes.length;
  }
  return out;
}

const f32Bytes = (values) => new Uint8Array(Float32Array.from(values).buffer);

/**
 * The network's tensors as safetensors, named as model.state_dict() of the
 * matching PyTorch module (see docs/interop.md), num_batches_tracked as int64.
 * @param {import('../network.js').Network} net
 * @returns {Uint8Array}
 */
export function toSafetensors(net) {
  const config = net.config;
  const layers = net.layers;
  const layout = torchLayout(config, layers);
  const weights = net.getWeights();
  const entries = [];
  layers.forEach((info, i) => {
    const { module } = layout.layers[i];
    const mine = weights.filter((w) => w.layer === i);
    info.tensors.forEach((t, k) => {
      entries.push({ name: stateDictName(module, t.torch), dtype: 'F32', shape: t.shape, bytes: f32Bytes(mine[k].values) });
    });
    const tracked = batchesTracked(net, i);
    if (tracked >= 0) {
      const count = new Uint8Array(8);
      new DataView(count.buffer).setBigInt64(0, BigInt(tracked), true);
      entries.push({ name: `${module}.num_batches_tracked`, dtype: 'I64', shape: [], bytes: count });
    }
  });
  return writeSafetensors(entries, { format: 'pt' });
}

/**
 * A Network with the given config and the tensors of a safetensors file
 * named as the matching PyTorch module's state_dict. Every expected tensor must
 * be there with its shape and nothing else (like load_state_dict(strict=True));
 * a missing N.num_batches_tracked counts as 0, as PyTorch's own loader does.
 * F64, F16 and BF16 tensors are rounded to float32.
 * @param {Uint8Array|ArrayBuffer} bytes
 * @param {object} config as for createNetwork
 * @returns {Promise<import('../network.js').Network>}
 */
export async function loadSafetensors(bytes, config) {
  const fn = 'loadSafetensors';
  bytes = asBytes(fn, 'bytes', bytes);
  // A config that does not fit is the caller's fault: the core names the layer (ConfigError).
  const described = await describeNetwork(config, fn);
  const { tensors } = readSafetensors(bytes, fn);
  const unused = new Set(tensors.keys());
  const weights = [];
  const tracked = new Map();
  const layout = torchLayout(described.config, described.layers);
  described.layers.forEach((info, i) => {
    const { module } = layout.layers[i];
    for (const { name, shape, torch } of info.tensors) {
      const key = stateDictName(module, torch);
      const t = tensors.get(key);
      if (t === undefined) {
        throw new ModelFormatError(`${fn}(): the file has no '${key}' (layer ${i}, ${info.type} ${name}); its tensors are ${[...tensors.keys()].join(', ')}`);
      }
      if (t.shape.join() !== shape.join()) {
        throw new ModelFormatError(`${fn}(): '${key}' has shape [${t.shape}], config.layers[${i}] needs [${shape}]`);
      }
      if (t.dtype[0] === 'I') throw new ModelFormatError(`${fn}(): '${key}' is ${t.dtype}, expected a float tensor`);
      weights.push({ layer: i, name, values: Float32Array.from(t.values()) });
      unused.delete(key);
    }
    // A layer with running statistics counts its batches, as PyTorch's batch norm does.
    if (info.tensors.some((t) => !t.trainable)) {
      const key = `${module}.num_batches_tracked`;
      const t = tensors.get(key);
      if (t !== undefined) {
        const n = t.values();
        if (t.dtype[0] !== 'I' || n.length !== 1 || !Number.isSafeInteger(n[0]) || n[0] < 0) {
          throw new ModelFormatError(`${fn}(): '${key}' must be one non-negative integer, got ${t.dtype} [${t.shape}]`);
        }
        tracked.set(i, n[0]);
        unused.delete(key);
      }
    }
  });
  if (unused.size > 0) {
    throw new ModelFormatError(`${fn}(): the file has tensors the config does not: ${[...unused].join(', ')}`);
  }
  return buildNetwork(fn, described.config, weights, tracked);
}

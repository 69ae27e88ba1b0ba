// A minimal protocol-buffers wire format writer and reader: just what the few
// ONNX ModelProto fields bnwasm reads and writes need (varints, 32/64-bit
// fixed, length-delimited). Why not protobufjs: see docs/interop.md (size).
import { ModelFormatError } from '../errors.js';

const VARINT = 0;
const FIXED64 = 1;
const BYTES = 2;
const FIXED32 = 5;

const utf8 = new TextEncoder();

/** Builds one message; nest with message(). Fields are written in call order. */
export class Writer {
  #chunks = [];
  #length = 0;

  #push(bytes) {
    this.#chunks.push(bytes);
    this.#length += bytes.length;
  }
  #tag(field, wire) {
    this.#varint(BigInt(field * 8 + wire));
  }
  #varint(v) {
    // v is a BigInt; negative int64 values are written as 10-byte two's complement.
    let u = BigInt.asUintN(64, v);
    const out = [];
    do {
      let byte = Number(u & 0x7fn);
      u >>= 7n;
      if (u !== 0n) byte |= 0x80;
      out.push(byte);
    } while (u !== 0n);
    this.#push(Uint8Array.from(out));
  }
  int(field, value) {
    this.#tag(field, VARINT);
    this.#varint(BigInt(value));
    return this;
  }
  float(field, value) {
    this.#tag(field, FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.#push(b);
    return this;
  }
  bytes(field, bytes) {
    this.#tag(field, BYTES);
    this.#varint(BigInt(bytes.length));
    this.#push(bytes);
    return this;
  }
  string(field, text) {
    return this.bytes(field, utf8.encode(text));
  }
  message(field, writer) {
    return this.bytes(field, writer.finish());
  }
  /** Repeated int64 in packed form. */
  packedInts(field, values) {
    const w = new Writer();
    for (const v of values) w.#varint(BigInt(v));
    return this.bytes(field, w.finish());
  }
  finish() {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const c of this.#chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/**
 * Parses one message into a map: field number -> list of {wire, value}, where
 * value is a BigInt for varints and fixed64, a number (raw uint32) for fixed32,
 * and a Uint8Array view for length-delimited fields. Every length is checked
 * against the bytes left; `where` names the message for errors.
 */
export function decode(bytes, where) {
  const fields = new Map();
  let at = 0;
  const bad = (why) => {
    throw new ModelFormatError(`${where}: ${why} at byte ${at} of ${bytes.length}`);
  };
  const varint = () => {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (at >= bytes.length) bad('a varint is cut short');
      const b = bytes[at++];
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asUintN(64, v);
    }
    return bad('a varint is longer than 10 bytes');
  };
  while (at < bytes.length) {
    const key = varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0) bad('field number 0');
    let value;
    if (wire === VARINT) {
      value = varint();
    } else if (wire === FIXED64) {
      if (at + 8 > bytes.length) bad('a fixed64 is cut short');
      value = new DataView(bytes.buffer, bytes.byteOffset + at, 8).getBigUint64(0, true);
      at += 8;
    } else if (wire === BYTES) {
      const n = varint();
      if (n > BigInt(bytes.length - at)) bad(`a field of ${n} bytes runs past the end`);
      value = bytes.subarray(at, at + Number(n));
      at += Number(n);
    } else if (wire === FIXED32) {
      if (at + 4 > bytes.length) bad('a fixed32 is cut short');
      value = new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0, true);
      at += 4;
    } else {
      bad(`unsupported wire type ${wire} (field ${field})`);
    }
    if (!fields.has(field)) fields.set(field, []);
    fields.get(field).push({ wire, value });
  }
  return new Message(fields, where);
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Typed access to a decoded message's fields, with wire-type checks. */
export class Message {
  #fields;
  constructor(fields, where) {
    this.#fields = fields;
    this.where = where;
  }
  #all(field, wire, what) {
    const list = this.#fields.get(field) ?? [];
    for (const e of list) {
      if (e.wire !== wire) {
        throw new ModelFormatError(`${this.where}: field ${field} (${what}) has wire type ${e.wire}, expected ${wire}`);
      }
    }
    return list.map((e) => e.value);
  }
  has(field) {
    return this.#fields.has(field);
  }
  /** Last value wins, as protobuf says for a repeated scalar read as singular. */
  int(field, fallback = 0n) {
    const list = this.#all(field, VARINT, 'integer');
    return list.length ? BigInt.asIntN(64, list[list.length - 1]) : fallback;
  }
  float(field, fallback) {
    const list = this.#all(field, FIXED32, 'float');
    if (!list.length) return fallback;
    const b = new DataView(new ArrayBuffer(4));
    b.setUint32(0, list[list.length - 1], true);
    return b.getFloat32(0, true);
  }
  bytes(field) {
    const list = this.#all(field, BYTES, 'bytes');
    return list.length ? list[list.length - 1] : null;
  }
  string(field, fallback = '') {
    const b = this.bytes(field);
    return b === null ? fallback : this.#text(b, field);
  }
  strings(field) {
    return this.#all(field, BYTES, 'string').map((b) => this.#text(b, field));
  }
  messages(field, name) {
    return this.#all(field, BYTES, name).map((b, i) => decode(b, `${this.where}.${name}[${i}]`));
  }
  message(field, name) {
    const b = this.bytes(field);
    return b === null ? null : decode(b, `${this.where}.${name}`);
  }
  /** Repeated int64, packed or not. */
  ints(field) {
    const out = [];
    for (const e of this.#fields.get(field) ?? []) {
      if (e.wire === VARINT) {
        out.push(BigInt.asIntN(64, e.value));
      } else if (e.wire === BYTES) {
        out.push(...readPackedVarints(e.value, this.where));
      } else {
        throw new ModelFormatError(`${this.where}: field ${field} has wire type ${e.wire}, expected a list of integers`);
      }
    }
    return out;
  }
  /** Repeated float (fixed32), packed or not, as a Float32Array. */
  floats(field) {
    const parts = [];
    for (const e of this.#fields.get(field) ?? []) {
      if (e.wire === FIXED32) {
        const b = new DataView(new ArrayBuffer(4));
        b.setUint32(0, e.value, true);
        parts.push(b.getFloat32(0, true));
      } else if (e.wire === BYTES) {
        if (e.value.length % 4 !== 0) {
          throw new ModelFormatError(`${this.where}: packed floats in field ${field} have ${e.value.length} bytes, not a multiple of 4`);
        }
        const v = new DataView(e.value.buffer, e.value.byteOffset, e.value.length);
        for (let i = 0; i < e.value.length; i += 4) parts.push(v.getFloat32(i, true));
      } else {
        throw new ModelFormatError(`${this.where}: field ${field} has wire type ${e.wire}, expected floats`);
      }
    }
    return Float32Array.from(parts);
  }
  /** Repeated double (fixed64), packed or not, as a Float64Array. */
  doubles(field) {
    const parts = [];
    for (const e of this.#fields.get(field) ?? []) {
      if (e.wire === FIXED64) {
        const b = new DataView(new ArrayBuffer(8));
        b.setBigUint64(0, e.value, true);
        parts.push(b.getFloat64(0, true));
      } else if (e.wire === BYTES) {
        if (e.value.length % 8 !== 0) {
          throw new ModelFormatError(`${this.where}: packed doubles in field ${field} have ${e.value.length} bytes, not a multiple of 8`);
        }
        const v = new DataView(e.value.buffer, e.value.byteOffset, e.value.length);
        for (let i = 0; i < e.value.length; i += 8) parts.push(v.getFloat64(i, true));
      } else {
        throw new ModelFormatError(`${this.where}: field ${field} has wire type ${e.wire}, expected doubles`);
      }
    }
    return Float64Array.from(parts);
  }
  #text(b, field) {
    try {
      return utf8Decoder.decode(b);
    } catch {
      throw new ModelFormatError(`${this.where}: field ${field} is not valid UTF-8`);
    }
  }
}

function readPackedVarints(bytes, where) {
  const out = [];
  let at = 0;
  while (at < bytes.length) {
    let v = 0n;
    let done = false;
    for (let shift = 0n; shift < 70n && at < bytes.length; shift += 7n) {
      const b = bytes[at++];
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        done = true;
        break;
      }
    }
    if (!done) throw new ModelFormatError(`${where}: a packed varint is cut short or too long`);
    out.push(BigInt.asIntN(64, BigInt.asUintN(64, v)));
  }
  return out;
}

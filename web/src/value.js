// The bytes of a Value (cpp/include/bnwasm/value.h): how configs cross to the core and
// how its answers (normalized configs, the layer schema, shapes) come back. One tag byte
// then the payload, little-endian: 0 null, 1 false, 2 true, 3 f64, 4 string (u32 length,
// UTF-8), 5 array (u32 count, values), 6 object (u32 count, key string and value each),
// 7 other (u32 length, UTF-8): a JS value with no place in a config, by the name an error
// gives it. Numbers cross as their 64 bits, so NaN, Infinity and every double arrive as
// they were, and the core needs no number parser.
import { describe } from './errors.js';

const utf8 = new TextEncoder();
const text = new TextDecoder();

// A plain object of any realm (a worker's, an iframe's, a test runner's context): its
// prototype is that realm's Object.prototype (or null).
function isPlainObject(v) {
  if (Object.prototype.toString.call(v) !== '[object Object]') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** A config (plain objects, arrays, strings, numbers, booleans, null) as Value bytes. */
export function encodeValue(value) {
  const chunks = [];
  let size = 0;
  const push = (bytes) => {
    chunks.push(bytes);
    size += bytes.length;
  };
  const u32 = (n) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    push(b);
  };
  const string = (tag, s) => {
    const b = utf8.encode(s);
    push(Uint8Array.of(tag));
    u32(b.length);
    push(b);
  };
  const write = (v) => {
    if (v === null) return push(Uint8Array.of(0));
    if (v === false || v === true) return push(Uint8Array.of(v ? 2 : 1));
    if (typeof v === 'number') {
      const b = new Uint8Array(9);
      b[0] = 3;
      new DataView(b.buffer).setFloat64(1, v, true);
      return push(b);
    }
    if (typeof v === 'string') return string(4, v);
    if (Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView))) {
      push(Uint8Array.of(5));
      u32(v.length);
      for (const item of v) write(typeof item === 'bigint' ? Number(item) : item);
      return;
    }
    if (isPlainObject(v)) {
      // undefined members are left out, as JSON does: the core fills in the default.
      const entries = Object.entries(v).filter(([, x]) => x !== undefined);
      push(Uint8Array.of(6));
      u32(entries.length);
      for (const [key, x] of entries) {
        const b = utf8.encode(key);
        u32(b.length);
        push(b);
        write(x);
      }
      return;
    }
    string(7, describe(v)); // a function, a Map, a class instance: named, then refused
  };
  write(value);
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The marker decodeValue makes of an "other" value: it shows as its name (showValue). */
class Other {
  constructor(name) {
    this.name = name;
  }
}

/** The value of Value bytes (plain objects and arrays). */
export function decodeValue(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const u32 = () => {
    const n = view.getUint32(at, true);
    at += 4;
    return n;
  };
  const str = () => {
    const n = u32();
    const s = text.decode(bytes.subarray(at, at + n));
    at += n;
    return s;
  };
  const read = () => {
    const tag = bytes[at++];
    switch (tag) {
      case 0:
        return null;
      case 1:
        return false;
      case 2:
        return true;
      case 3: {
        const n = view.getFloat64(at, true);
        at += 8;
        return n;
      }
      case 4:
        return str();
      case 5:
        return Array.from({ length: u32() }, read);
      case 6: {
        const o = {};
        for (let n = u32(); n > 0; n--) {
          const key = str();
          o[key] = read();
        }
        return o;
      }
      case 7:
        return new Other(str());
      default:
        throw new Error(`bnwasm: unknown Value tag ${tag}`);
    }
  };
  return read();
}

/** A value for an error message: short arrays of numbers as [a, b], the rest as describe() puts it. */
export function showValue(v) {
  if (v instanceof Other) return v.name;
  if (Array.isArray(v) && v.length <= 8 && v.every((x) => typeof x === 'number' || typeof x === 'string')) {
    return `[${v.map((x) => describe(x)).join(', ')}]`;
  }
  return describe(v);
}

// ONNX's own operator conformance cases (the generators of Debian's python3-onnx 1.12,
// onnx.backend.test.case.node) for every op importONNX reads, each made a one-op model by
// scripts/onnx/conformance.py: the node's first input stays the graph's input, every other
// input is an initializer. Each case must either import and give the case's expected output
// through predictBatch (its input given as bnwasm's flat rows: [N, ...] row-major, NCHW for
// images), or be refused with a ModelFormatError whose `reason` docs/interop.md lists for
// that op (or for any graph). Anything else (another error, a wrong output, a reason the docs
// do not list) fails. The committed manifest holds each case's hash, so a changed generator
// (another onnx or numpy) fails here instead of silently changing what is tested.
//
// Tolerance: |bnwasm - expected| <= 1e-6 * (1 + |expected|). Each case is one op, and both
// sides compute in float32 (the generators' references are numpy float32, or float64 rounded
// to float32 once), so they differ only by the rounding of each elementary operation,
// u = 2^-24 = 6e-8 relative, in a different order: 1e-6 is 16 u of the output (or of 1 for
// outputs below 1, where the terms of a sum are ~1: the cases draw N(0, 1) inputs). The longest
// chains among the cases read: batch norm's (x - mean) * gamma / sqrt(var + eps) + beta, five
// roundings on outputs up to ~10, and window sums of up to 25 terms (an average of a 5x5 window
// rounds its sum and one division). A wrong reading is far outside it: epsilon 1e-2 for 1e-5,
// a window one pixel off, an average that counts its padding, a transposed weight all move
// outputs by > 1e-2. The table prints the worst difference per op and its share of the tolerance.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ModelFormatError } from 'bnwasm';
import { importONNX } from 'bnwasm/interop';
import { READ_OPS } from '../../web/src/interop/onnx.js';

const ROOT = new URL('../../', import.meta.url);
const OUT = new URL('build/onnx-conformance/', ROOT);
execFileSync('/usr/bin/python3', ['scripts/onnx/conformance.py', OUT.pathname], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
const { generator, cases } = JSON.parse(readFileSync(new URL('cases.json', OUT), 'utf8'));
const manifest = JSON.parse(readFileSync(new URL('tests/fixtures/onnx-conformance.json', ROOT), 'utf8'));

// The refusal reasons docs/interop.md lists: per op, and for any graph (the row `graph`),
// from the table of the section "ONNX ops: what importONNX reads".
function documentedReasons() {
  const docs = readFileSync(new URL('docs/interop.md', ROOT), 'utf8');
  const section = docs.split('\n### ONNX ops: what importONNX reads')[1]?.split('\n#')[0];
  if (!section) throw new Error('docs/interop.md has no section "ONNX ops: what importONNX reads"');
  const reasons = new Map();
  for (const row of section.split('\n').filter((l) => l.startsWith('| '))) {
    const cells = row.split(' | ');
    const ops = cells[0] === '| graph' ? ['graph'] : [...cells[0].matchAll(/`(\w+)`/g)].map((m) => m[1]);
    if (cells.length < 3) continue;
    for (const op of ops) reasons.set(op, new Set([...cells.at(-1).matchAll(/`([a-z0-9-]+)`:/g)].map((m) => m[1])));
  }
  return reasons;
}
const reasons = documentedReasons();

const DTYPES = { float32: Float32Array, float64: Float64Array, uint8: Uint8Array, int8: Int8Array, int32: Int32Array, int64: BigInt64Array, bool: Uint8Array };
function tensor({ dtype, dims, data }) {
  const bytes = Buffer.from(data, 'base64');
  const Type = DTYPES[dtype];
  if (Type === undefined) throw new Error(`no typed array for ${dtype}`);
  const values = new Type(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return { dims, values: Float64Array.from(values, Number) };
}

const TOLERANCE = { atol: 1e-6, rtol: 1e-6 };
const table = new Map(); // op -> {cases, passed, worst, refused: Map(reason -> count)}

test('the generator made exactly the cases of the committed manifest (same onnx, same numbers)', () => {
  const made = Object.fromEntries(cases.map((c) => [c.name, { op: c.op, sha256: c.sha256 }]));
  expect({ generator, cases: made }).toEqual({ generator: manifest.generator, cases: manifest.cases });
});

test('every op importONNX reads has its conformance cases, and the docs a row', () => {
  const covered = new Set(cases.map((c) => c.op));
  expect(READ_OPS.filter((op) => !covered.has(op))).toEqual([]);
  expect([...covered].filter((op) => !reasons.has(op))).toEqual([]);
  expect(reasons.has('graph')).toBe(true);
});

describe.each([...new Set(cases.map((c) => c.op))])('%s', (op) => {
  test.each(cases.filter((c) => c.op === op).map((c) => [c.name, c]))('%s', async (name, c) => {
    const row = table.get(op) ?? { cases: 0, passed: 0, worst: 0, share: 0, refused: new Map() };
    table.set(op, row);
    row.cases++;
    const bytes = readFileSync(new URL(c.model, OUT));
    let net;
    try {
      net = await importONNX(bytes);
    } catch (e) {
      if (!(e instanceof ModelFormatError)) throw e;
      // The graph row's reasons apply to every op.
      const listed = new Set([...reasons.get('graph'), ...(reasons.get(e.op) ?? [])]);
      if (!listed.has(e.reason)) throw new Error(`refused for a reason docs/interop.md does not list for ${e.op ?? 'any graph'} (${e.reason}): ${e.message}`);
      if (e.op !== undefined && e.op !== op) throw new Error(`the refusal names op ${e.op}, the case's node is ${op}: ${e.message}`);
      row.refused.set(e.reason, (row.refused.get(e.reason) ?? 0) + 1);
      return;
    }
    try {
      expect(c.outputs.length).toBe(1);
      const input = tensor(c.input);
      const expected = tensor(c.outputs[0]);
      const actual = net.predictBatch(Float32Array.from(input.values));
      // A LogSoftmax network outputs probabilities (docs/interop.md): exp of the case's output.
      const want = op === 'LogSoftmax' ? expected.values.map(Math.exp) : expected.values;
      expect(actual.length).toBe(want.length);
      let worst = 0;
      let share = 0;
      for (let i = 0; i < want.length; i++) {
        const diff = Math.abs(actual[i] - want[i]);
        const allowed = TOLERANCE.atol + TOLERANCE.rtol * Math.abs(want[i]);
        if (!(diff <= allowed)) throw new Error(`output[${i}]: expected ${want[i]}, got ${actual[i]} (|diff| ${diff} > ${allowed})`);
        worst = Math.max(worst, diff);
        share = Math.max(share, diff / allowed);
      }
      row.passed++;
      row.worst = Math.max(row.worst, worst);
      row.share = Math.max(row.share, share);
    } finally {
      net.dispose();
    }
  });
});

afterAll(() => {
  const lines = [
    `ONNX conformance (onnx ${generator.onnx}, numpy ${generator.numpy}): op, cases, passed, refused, failed, worst |diff| of the passed (share of the tolerance), refusals by reason`,
  ];
  const sum = { cases: 0, passed: 0, refused: 0 };
  const count = (n) => String(n).padStart(4);
  for (const [op, r] of [...table].sort(([a], [b]) => a.localeCompare(b))) {
    const refused = [...r.refused.values()].reduce((a, b) => a + b, 0);
    sum.cases += r.cases;
    sum.passed += r.passed;
    sum.refused += refused;
    const worst = r.passed ? `${r.worst.toExponential(1)} (${Math.round(100 * r.share)}%)` : '-';
    const reasons = [...r.refused].map(([reason, n]) => `${reason} x${n}`).join(', ');
    lines.push(`  ${op.padEnd(19)}${count(r.cases)}${count(r.passed)}${count(refused)}${count(r.cases - r.passed - refused)}  ${worst.padEnd(13)} ${reasons}`);
  }
  lines.push(`  ${'total'.padEnd(19)}${count(sum.cases)}${count(sum.passed)}${count(sum.refused)}${count(sum.cases - sum.passed - sum.refused)}`);
  console.log(lines.join('\n'));
});

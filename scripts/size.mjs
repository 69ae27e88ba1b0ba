#!/usr/bin/env node
// What the single-thread download is made of: the esbuild bundle of createNetwork (as
// scripts/bench.mjs measures it for issue 18's bound) and the wasm it fetches, both gzip -9, the JS by module and the
// wasm by function family. A network of dense, batch-norm, activation and merge layers fetches
// bnwasm-dense.wasm; one with a convolution or pooling layer bnwasm.wasm (web/src/module.js).
// Builds copies of both modules with function names (--profiling-funcs, build/wasm-names; the
// same code otherwise) to attribute their code sections; each family's share of the gzip size
// is its share of the raw bytes, an estimate.
//   node scripts/size.mjs          (after npm run build)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gz = (bytes) => gzipSync(bytes, { level: 9 }).length;
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
const sh = (cmd, args, options = {}) => execFileSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28, ...options });

const { build } = await import('esbuild');
const bundleOf = (contents) => build({
  stdin: { contents, resolveDir: root, loader: 'js' },
  bundle: true, minify: true, format: 'esm', platform: 'browser', target: 'es2020', write: false, logLevel: 'silent',
  external: ['node:*'], metafile: true,
});
const bundle = await bundleOf("export { createNetwork } from './web/src/index.js';");
const js = bundle.outputFiles[0].contents;
const dense = readFileSync(join(root, 'web/dist/bnwasm-dense.wasm'));
const full = readFileSync(join(root, 'web/dist/bnwasm.wasm'));
const jsGz = gz(js), denseGz = gz(dense), fullGz = gz(full);
console.log(`single-thread download, dense-only app: ${kib(jsGz + denseGz)} gzip = JS ${kib(jsGz)} (${js.length} B minified) + bnwasm-dense.wasm ${kib(denseGz)} (${dense.length} B)`);
console.log(`  an app with a convolution or pooling layer: ${kib(jsGz + fullGz)} = JS + bnwasm.wasm ${kib(fullGz)} (${full.length} B); ${kib(jsGz + fullGz + denseGz)} if it also made a dense-only network`);
// scripts/bench.mjs bundles the whole entry (createTrainer, schemas and the rest too).
const whole = (await bundleOf("export * from './web/src/index.js';")).outputFiles[0].contents;
console.log(`  with all of index.js (as npm run bench counts it): ${kib(gz(whole) + denseGz)} = JS ${kib(gz(whole))} + bnwasm-dense.wasm`);
const inputs = Object.entries(Object.values(bundle.metafile.outputs)[0].inputs).filter(([, v]) => v.bytesInOutput > 0);
const jsTotal = inputs.reduce((s, [, v]) => s + v.bytesInOutput, 0);
console.log('\nJS by module (minified bytes; gzip share estimated):');
for (const [file, v] of inputs.sort((a, b) => b[1].bytesInOutput - a[1].bytesInOutput)) {
  console.log(`  ${file.padEnd(34)} ${String(v.bytesInOutput).padStart(6)} B  ~${kib((jsGz * v.bytesInOutput) / jsTotal)}`);
}

// The same modules with names.
const env = { ...process.env, NODE_PATH: process.env.NODE_PATH ?? '/usr/share/nodejs' };
sh('emcmake', ['cmake', '-S', '.', '-B', 'build/wasm-names', '-DBNWASM_TESTS=OFF', '-DCMAKE_BUILD_TYPE=Release',
  '-DCMAKE_CROSSCOMPILING_EMULATOR=node', '-DCMAKE_EXE_LINKER_FLAGS=--profiling-funcs'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
sh('cmake', ['--build', 'build/wasm-names', '--target', 'bnwasm_module', 'bnwasm_module_dense', '-j2'], { env, stdio: ['ignore', 'ignore', 'inherit'] });

// Families, first match wins, by the function's qualified name (its arguments left out).
// Binaryen inlines at link time, so a caller holds the code of what it inlined (the export
// bn_train holds much of the training step, bn_load the model reader).
const FAMILIES = [
  ['C exports (cpp/bindings; with the network code inlined into them)', /^bn_|__wasm_call_ctors|__cxx_global/],
  ['depthwise convolution (kernels and their staging)', /dwconv|depthwise|Depthwise|taps_used|pad_input|forward_plane|dinput_|dweight_|copy_rows|gather|scatter|transpose4|epilogue_lanes/],
  ['GEMM, packing, dense', /gemm|pack|dense_row|DenseOp|dense_/],
  ['convolution: direct, im2col, Winograd', /conv2d_forward|conv2d_backward|im2col|col2im|winograd|Conv2dOp::|conv2d_scratch|shifted/],
  ['batch norm', /batchnorm|BatchNormOp::|colmeanvar|chanmeanvar|chandsums|scale_shift/],
  ['pooling', /Pool2dOp::|PoolOp::|PaddedPool/],
  ['activations, losses, optimizers, merges', /adam|sgd|finite|relu|sigmoid|tanh|softmax|mse|crossentropy|Op::/],
  ['spec, Value, registry, serialization', /parse_|_defs$|_def$|_def\(\)|option|Value|spec|Spec|schema|Reader|Writer|put_|unknown_keys|layer_where|number_range|crc32|_value$|error_of|note_of|legacy|LayerDef|OptionDef|TensorDef|shape_text|window_error|pads_of|needs_image|input_error|finish$|weight_options|input_shapes|layer_shapes|padded$|layer_defs|left_out|int_range|dims|quoted_list|name_of|int_text|at_most|geometry$|Serializer|ErrorInfo/],
  ['network runner', /Network|init_weights|shuffle|next_uniform|parallel/],
  ['libc++ (strings, vectors)', /std::/],
  ['libc, math, malloc', /./],
];
const head = (name) => name.replaceAll('(anonymous namespace)::', '@').split('(')[0].replaceAll('@', '');

/** Raw bytes per family (and the data section) of a named build, and the gzip of the shipped one. */
function families(name, shipped) {
  const file = `build/wasm-names/dist/${name}`;
  const dump = sh('wasm-objdump', ['-x', file]);
  const funcs = [...dump.matchAll(/ - func\[\d+\] size=(\d+) <([^>]*)>/g)].map((m) => ({ size: Number(m[1]), mangled: m[2] }));
  const names = sh('c++filt', [], { input: funcs.map((f) => f.mangled).join('\n') }).split('\n');
  funcs.forEach((f, i) => (f.name = names[i]));
  const sections = Object.fromEntries([...sh('wasm-objdump', ['-h', file]).matchAll(/^\s*(\w+) start=\S+ end=\S+ \(size=(0x[0-9a-f]+)\)/gm)].map((m) => [m[1], Number(m[2])]));
  const perFamily = new Map(FAMILIES.map(([family]) => [family, 0]));
  for (const f of funcs) {
    const family = FAMILIES.find(([, re]) => re.test(head(f.name)))[0];
    perFamily.set(family, perFamily.get(family) + f.size);
  }
  perFamily.set('data (strings, tables)', sections.Data ?? 0);
  const code = funcs.reduce((s, f) => s + f.size, 0);
  return { perFamily, code, data: sections.Data ?? 0, bytes: shipped.length, gzip: gz(shipped), named: gz(readFileSync(join(root, file))) };
}
const builds = [families('bnwasm-dense.wasm', dense), families('bnwasm.wasm', full)];
const share = (b, size) => kib((b.gzip * size) / (b.code + b.data));
console.log('\nwasm by function family (raw bytes; gzip share estimated from the raw share):');
console.log(`  ${''.padEnd(66)} ${'bnwasm-dense.wasm'.padStart(22)} ${'bnwasm.wasm'.padStart(22)}`);
const order = [...builds[1].perFamily].sort((a, b) => b[1] - a[1]).map(([family]) => family);
for (const family of order) {
  const cells = builds.map((b) => `${String(b.perFamily.get(family)).padStart(6)} B ~${share(b, b.perFamily.get(family)).padStart(8)}`);
  console.log(`  ${family.padEnd(66)} ${cells.map((c) => c.padStart(22)).join(' ')}`);
}
console.log(`  ${'total (code + data; the rest of the file is names of imports/exports, types, tables)'.padEnd(66)} ${builds.map((b) => `${String(b.code + b.data).padStart(6)} B ~${kib(b.gzip).padStart(8)}`.padStart(22)).join(' ')}`);
console.log(`\n(the named copies are ${builds.map((b) => kib(b.named)).join(' and ')} gzip; the names are not in the download)`);

#!/usr/bin/env node
// What the single-thread download is made of: the esbuild bundle of createNetwork (as
// scripts/bench.mjs measures it) and bnwasm.wasm, both gzip -9, the JS by module and the wasm
// by function family. Builds a copy of the module with function names (--profiling-funcs,
// build/wasm-names; the same code otherwise) to attribute the code section; each family's
// share of the gzip size is its share of the raw code, an estimate.
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
const wasm = readFileSync(join(root, 'web/dist/bnwasm.wasm'));
const jsGz = gz(js), wasmGz = gz(wasm);
console.log(`single-thread download: ${kib(jsGz + wasmGz)} gzip = JS ${kib(jsGz)} (${js.length} B minified) + wasm ${kib(wasmGz)} (${wasm.length} B)`);
// scripts/bench.mjs bundles the whole entry (createTrainer, schemas and the rest too).
const whole = (await bundleOf("export * from './web/src/index.js';")).outputFiles[0].contents;
console.log(`  with all of index.js (as npm run bench counts it): ${kib(gz(whole) + wasmGz)} = JS ${kib(gz(whole))} + wasm`);
const inputs = Object.entries(Object.values(bundle.metafile.outputs)[0].inputs).filter(([, v]) => v.bytesInOutput > 0);
const jsTotal = inputs.reduce((s, [, v]) => s + v.bytesInOutput, 0);
console.log('\nJS by module (minified bytes; gzip share estimated):');
for (const [file, v] of inputs.sort((a, b) => b[1].bytesInOutput - a[1].bytesInOutput)) {
  console.log(`  ${file.padEnd(34)} ${String(v.bytesInOutput).padStart(6)} B  ~${kib((jsGz * v.bytesInOutput) / jsTotal)}`);
}

// The same module with names.
const env = { ...process.env, NODE_PATH: process.env.NODE_PATH ?? '/usr/share/nodejs' };
sh('emcmake', ['cmake', '-S', '.', '-B', 'build/wasm-names', '-DBNWASM_TESTS=OFF', '-DCMAKE_BUILD_TYPE=Release',
  '-DCMAKE_CROSSCOMPILING_EMULATOR=node', '-DCMAKE_EXE_LINKER_FLAGS=--profiling-funcs'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
sh('cmake', ['--build', 'build/wasm-names', '--target', 'bnwasm_module', '-j2'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
const dump = sh('wasm-objdump', ['-x', 'build/wasm-names/dist/bnwasm.wasm']);
const funcs = [...dump.matchAll(/ - func\[\d+\] size=(\d+) <([^>]*)>/g)].map((m) => ({ size: Number(m[1]), mangled: m[2] }));
const names = sh('c++filt', [], { input: funcs.map((f) => f.mangled).join('\n') }).split('\n');
funcs.forEach((f, i) => (f.name = names[i]));
const sections = Object.fromEntries([...sh('wasm-objdump', ['-h', 'build/wasm-names/dist/bnwasm.wasm']).matchAll(/^\s*(\w+) start=\S+ end=\S+ \(size=(0x[0-9a-f]+)\)/gm)].map((m) => [m[1], Number(m[2])]));

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
  ['spec, Value, registry, serialization', /parse_|_defs$|_def$|_def\(\)|option|Value|spec|Spec|schema|Reader|Writer|put_|unknown_keys|layer_where|number_range|crc32|_value$|error_of|note_of|legacy|LayerDef|OptionDef|TensorDef|shape_text|window_error|pads_of|needs_image|input_error|finish$|weight_options|input_shapes|layer_shapes|padded$|layer_defs|int_range|dims|quoted_list|name_of|int_text|at_most|geometry$|Serializer|ErrorInfo/],
  ['network runner', /Network|init_weights|shuffle|next_uniform|parallel/],
  ['libc++ (strings, vectors)', /std::/],
  ['libc, math, malloc', /./],
];
const head = (name) => name.replaceAll('(anonymous namespace)::', '@').split('(')[0].replaceAll('@', '');
const code = funcs.reduce((s, f) => s + f.size, 0);
const perFamily = new Map(FAMILIES.map(([name]) => [name, 0]));
for (const f of funcs) {
  const family = FAMILIES.find(([, re]) => re.test(head(f.name)))[0];
  perFamily.set(family, perFamily.get(family) + f.size);
}
const named = gz(readFileSync(join(root, 'build/wasm-names/dist/bnwasm.wasm')));
console.log(`\nwasm by function family (code section ${code} B of ${wasm.length}; data ${sections.Data ?? 0} B; gzip share estimated from the raw share):`);
for (const [name, size] of [...perFamily].sort((a, b) => b[1] - a[1])) {
  console.log(`  ${name.padEnd(58)} ${String(size).padStart(6)} B  ~${kib((wasmGz * size) / (code + (sections.Data ?? 0)))}`);
}
console.log(`  ${'data (strings, tables)'.padEnd(58)} ${String(sections.Data ?? 0).padStart(6)} B  ~${kib((wasmGz * (sections.Data ?? 0)) / (code + (sections.Data ?? 0)))}`);
console.log(`\n(the named copy is ${kib(named)} gzip; the names are not in the download)`);

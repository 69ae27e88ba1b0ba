#!/usr/bin/env node
// Builds the CommonJS entries from the ES module sources, so `require('bnwasm')` and
// `require('bnwasm/interop')` work where Node cannot require an ES module (Node 18, Node 20
// before 20.19) and in Jest's default configuration, which runs CommonJS and does not transform
// node_modules. One source of truth: every file here is generated, never edited.
//
//   node scripts/build-cjs.mjs [DIST]   DIST: where bnwasm.mjs is read from and the CommonJS
//                                       files are written (default web/dist; build.sh passes
//                                       its staging folder, which then becomes web/dist)
//
// One CommonJS file per ES module, not one bundle per entry: `bnwasm` and `bnwasm/interop` then
// share their modules through Node's require cache, as their ES modules do, so a Network that
// require('bnwasm') made is the class the converters know, and require('bnwasm/interop')
// registers net.toONNX() on it. Each module of web/src (those the two Node entries reach) becomes
// DIST/cjs/src/<same path>.cjs, the Emscripten glue DIST/cjs/dist/bnwasm.cjs, so a relative
// import keeps its path and changes only its extension. DIST/bnwasm.cjs and DIST/interop.cjs
// are the entries package.json's "require" conditions name.
//
// import.meta does not exist in CommonJS. Each module gets back the URL it has in the installed
// package: `import.meta.url` in web/src/platform.node.js becomes the URL of
// <package>/web/src/platform.node.js, computed from the generated file's own __dirname. So
// `new URL('../dist/bnwasm.wasm', import.meta.url)` finds the wasm file and
// `new URL('./worker.node.js', import.meta.url)` the worker, which Node's worker_threads runs as
// the ES module it is (outside Jest's module system, whatever the caller's loader).
//
// Types for `require` users (TypeScript module node16/nodenext in a CommonJS project): copies of
// the .d.ts files as .d.cts files beside the entries, their relative imports renamed to match.
import { build } from 'esbuild';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.resolve(process.argv[2] ?? path.join(root, 'web/dist'));
// Where the generated files live in the package, whatever folder they are written to now.
const bundleDir = 'web/dist';
const posix = (p) => p.split(path.sep).join('/');

/** A file's path in the package: the staging folder stands for web/dist. */
function packagePath(file) {
  if (file === dist || file.startsWith(dist + path.sep)) return posix(path.join(bundleDir, path.relative(dist, file)));
  return posix(path.relative(root, file));
}

/** The CommonJS file generated for a source file (by its package path), relative to DIST. */
function outputOf(source) {
  const match = /^web\/(src|dist)\/(.+)\.m?js$/.exec(source);
  if (!match) throw new Error(`build-cjs: ${source} is neither in web/src nor the glue in web/dist`);
  return `cjs/${match[1]}/${match[2]}.cjs`;
}

// The Node entries of package.json's exports ("node" condition, else "import"/"default").
const { exports } = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));
const ENTRIES = { '.': 'bnwasm', './interop': 'interop' };
const entries = Object.entries(ENTRIES).map(([subpath, name]) => {
  const target = exports[subpath];
  const file = [target?.node, target?.import, target?.default].find((t) => typeof t === 'string');
  if (!file) throw new Error(`build-cjs: package.json exports["${subpath}"] names no node, import or default entry`);
  if (typeof target?.types !== 'string') throw new Error(`build-cjs: package.json exports["${subpath}"] names no types`);
  return { subpath, name, source: path.join(root, file), types: path.join(root, target.types) };
});

// The glue is taken from DIST, so the CommonJS files and the wasm beside them are one build:
// bnwasm.mjs and the threaded module's bnwasm-mt.mjs; bnwasm-dense.mjs too (the dense build's
// entry, an ES module like those of web/src, converted as they are).
const GLUE = /\/dist\/(bnwasm(?:-mt|-dense)?\.mjs)$/;
const glues = new Set(['bnwasm.mjs', 'bnwasm-mt.mjs'].map((name) => path.join(dist, name)));
const resolveSource = (importer, specifier) => {
  const target = path.resolve(path.dirname(importer), specifier);
  const match = GLUE.exec(posix(target));
  return match ? path.join(dist, match[1]) : target;
};

/** The source with `import.meta.url` replaced by the URL the file has in the installed package. */
function withFileUrl(file, source) {
  const fromOutput = path.posix.relative(path.posix.dirname(`${bundleDir}/${outputOf(packagePath(file))}`), packagePath(file));
  const url = `require("node:url").pathToFileURL(require("node:path").join(__dirname, ${JSON.stringify(fromOutput)})).href`;
  return source.replace(/\bimport\.meta\.url\b/g, url);
}

// 1. The modules the entries reach: a throwaway bundle, for its list of inputs.
const reach = await build({
  entryPoints: entries.map((e) => e.source),
  bundle: true,
  write: false,
  platform: 'node',
  format: 'esm',
  outdir: path.join(dist, '.reach'), // named for esbuild's multi-entry rule; write: false writes nothing
  metafile: true,
  logLevel: 'warning',
  plugins: [{ name: 'glue', setup: (b) => b.onResolve({ filter: GLUE }, (a) => ({ path: resolveSource(a.importer, a.path) })) }],
});
const modules = Object.keys(reach.metafile.inputs).map((file) => path.resolve(root, file));
const stray = modules.map(packagePath).filter((file) => !file.startsWith('web/src/') && !GLUE.test(`/${file}`));
if (stray.length > 0) throw new Error(`build-cjs: the entries reach files outside web/src: ${stray.join(', ')}`);

// 2. Each module on its own, its relative imports left as require() of the sibling's .cjs file.
const out = path.join(dist, 'cjs');
await rm(out, { recursive: true, force: true });
const perModule = {
  name: 'one-file-per-module',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (args.kind === 'entry-point') return null;
      const from = outputOf(packagePath(args.importer));
      const to = outputOf(packagePath(resolveSource(args.importer, args.path)));
      let specifier = path.posix.relative(path.posix.dirname(from), to);
      if (!specifier.startsWith('.')) specifier = `./${specifier}`;
      return { path: specifier, external: true };
    });
    b.onLoad({ filter: /\.m?js$/ }, async ({ path: file }) => ({ contents: withFileUrl(file, await readFile(file, 'utf8')), loader: 'js' }));
  },
};
for (const file of modules) {
  const outfile = path.join(dist, outputOf(packagePath(file)));
  await mkdir(path.dirname(outfile), { recursive: true });
  if (glues.has(file)) {
    // The glue imports nothing and exports one function: written as it is, that function made
    // module.exports itself (its importers are ES modules of a "type": "module" package, whose
    // default import of a CommonJS file is module.exports).
    const source = withFileUrl(file, await readFile(file, 'utf8'));
    const exported = /\nexport default (\w+);\s*$/.exec(source);
    if (!exported) throw new Error('build-cjs: the glue no longer ends in `export default <name>;`; update scripts/build-cjs.mjs');
    const banner = `// bnwasm, CommonJS: generated by scripts/build-cjs.mjs from the Emscripten glue (${packagePath(file)}); do not edit.`;
    await writeFile(outfile, `${banner}\n${source.slice(0, exported.index)}\nmodule.exports = ${exported[1]};\n`);
    continue;
  }
  await build({
    entryPoints: [file],
    bundle: true, // with every import external (above): only this module, its imports required
    platform: 'node',
    format: 'cjs',
    target: 'node18',
    // Dynamic import() of Node's modules becomes require(): Jest's CommonJS runtime has no import().
    supported: { 'dynamic-import': false },
    outfile,
    banner: { js: `// bnwasm, CommonJS: generated by scripts/build-cjs.mjs from ${packagePath(file)}; do not edit.` },
    plugins: [perModule],
    legalComments: 'inline',
    logLevel: 'warning',
  });
}
for (const { name, source } of entries) {
  const target = `./${outputOf(packagePath(source))}`;
  await writeFile(path.join(dist, `${name}.cjs`), `// bnwasm, CommonJS entry: generated by scripts/build-cjs.mjs; do not edit.\n'use strict';\nmodule.exports = require(${JSON.stringify(target)});\n`);
}

// 3. Types: web/src/index.d.ts -> bnwasm.d.cts, web/src/interop/index.d.ts -> interop.d.cts, any
// other web/src/<name>.d.ts -> <name>.d.cts. Every relative specifier must name one of these
// declarations; it is renamed to that one's .cjs name. Comments are left as they are.
const declarations = new Map();
for (const { name, types } of entries) declarations.set(types, name);
for (const file of await readdir(path.join(root, 'web/src'))) {
  const full = path.join(root, 'web/src', file);
  if (file.endsWith('.d.ts') && !declarations.has(full)) declarations.set(full, file.slice(0, -'.d.ts'.length));
}
const declarationOf = (file) => declarations.get(file.replace(/\.js$/, '.d.ts'));
for (const [file, name] of declarations) {
  const source = await readFile(file, 'utf8');
  const left = [];
  const renamed = source.replace(/(\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)(['"])(\.[^'"]*)\2/g, (whole, keyword, quote, specifier) => {
    const sibling = declarationOf(path.resolve(path.dirname(file), specifier));
    if (!sibling) left.push(specifier);
    return sibling ? `${keyword}${quote}./${sibling}.cjs${quote}` : whole;
  });
  if (left.length) throw new Error(`build-cjs: ${packagePath(file)} has relative imports the .d.cts copy cannot follow: ${left.join(', ')}`);
  const header = `// Generated by scripts/build-cjs.mjs from ${packagePath(file)} (types of the CommonJS entries); do not edit.\n`;
  await writeFile(path.join(dist, `${name}.d.cts`), header + renamed);
}
console.log(`build-cjs: ${entries.map((e) => `${bundleDir}/${e.name}.cjs`).join(', ')} over ${modules.length} modules in ${bundleDir}/cjs, ${declarations.size} declaration files`);

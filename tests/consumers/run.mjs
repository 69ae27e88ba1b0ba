#!/usr/bin/env node
// The consumer suite: bnwasm as a web developer gets it. Packs the package (npm pack), installs
// the tarball into a minimal app per bundler (build/consumers/<app>/, from the templates here),
// builds each in production mode with no configuration beyond what the README documents, and
// drives each page (tests/consumers/app/main.js: create, train, predict, save/load,
// createTrainer fit/snapshot/predict, an InputError from the worker) in every browser engine
// (Chromium, Firefox ESR, WebKitGTK: tests/browsers/engines.mjs), each page twice: served as a
// plain static host does and cross-origin isolated (COOP/COEP). Vite's dev servers are driven
// too. Production builds are served under the strict Content-Security-Policy
// `script-src 'self' 'wasm-unsafe-eval'`. Ends with two tables: consumer x engine, and what each
// engine's pages saw (crossOriginIsolated, SharedArrayBuffer).
//   node tests/consumers/run.mjs [names, e.g. vite8,webpack]     BNWASM_BROWSERS=firefox,webkit: some engines
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { engineNames, launch } from '../browsers/engines.mjs';
import { ISOLATION_HEADERS, watch } from '../browsers/proxy.mjs';
import { problems, runPage } from './lib/browser.mjs';
import { CONSUMERS_DIR, ROOT, packPackage, packedFileList } from './lib/pack.mjs';
import { serveStatic } from './lib/serve.mjs';

const HERE = join(ROOT, 'tests', 'consumers');
const MODULES = join(ROOT, 'node_modules');
export const STRICT_CSP = "script-src 'self' 'wasm-unsafe-eval'";
// Optional: names to run (comma-separated substrings), e.g. `vite8,webpack`.
const only = process.argv[2]?.split(',') ?? null;

const version = (pkg) => JSON.parse(readFileSync(join(MODULES, pkg, 'package.json'), 'utf8')).version;
const bin = (pkg, path) => join(MODULES, pkg, path);
const nodeAtLeast = (wanted) => {
  const [a, b, c] = process.versions.node.split('.').map(Number);
  const [x, y, z] = wanted.split('.').map(Number);
  return a !== x ? a > x : b !== y ? b > y : c >= z;
};

/** Runs a build step in the app's folder; throws with its output when it fails. */
function run(app, command, args) {
  try {
    return execFileSync(command, args, {
      cwd: app,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
  } catch (error) {
    throw new Error(`${basename(command)} ${args.join(' ')} failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`.slice(0, 4000));
  }
}

/** The line of a build log that says what went wrong (not a stack frame, not a summary). */
function firstError(log) {
  const lines = log.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('at ') && !l.endsWith(':'));
  const telling = [/does not support|unexpected token|could not resolve|cannot find|not found|install the/i, /error/i];
  const line = telling.map((re) => lines.find((l) => re.test(l) && !/build failed|compiled with/i.test(l))).find(Boolean);
  return (line ?? lines[0] ?? 'see the log').slice(0, 150);
}

const staticPage = (app, script) =>
  writeFileSync(join(app, 'dist', 'index.html'), readFileSync(join(HERE, 'templates', 'static', 'index.html'), 'utf8').replace('%SCRIPT%', script));

const vites = [5, 6, 7, 8].map((major) => ({
  name: `vite${major}`,
  template: 'vite',
  bundler: `vite${major}`,
  // Vite 7 and 8 require Node 20.19 (require(esm)).
  minNode: major >= 7 ? '20.19.0' : null,
  build: (app) => run(app, process.execPath, [bin(`vite${major}`, 'bin/vite.js'), 'build']),
  dev: [bin(`vite${major}`, 'bin/vite.js')],
}));

/** Each consumer: how its app is built (the README's commands) and where the built page is. */
const CONSUMERS = [
  ...vites,
  {
    name: 'webpack',
    template: null,
    bundler: 'webpack',
    build(app) {
      run(app, process.execPath, [bin('webpack-cli', 'bin/cli.js'), '--mode', 'production']);
      staticPage(app, '<script src="./main.js" defer></script>');
    },
  },
  {
    name: 'rollup',
    template: 'rollup',
    bundler: 'rollup',
    build(app) {
      run(app, process.execPath, [bin('rollup', 'dist/bin/rollup'), '-c']);
      for (const wasm of ['bnwasm.wasm', 'bnwasm-dense.wasm', 'bnwasm-mt.wasm']) copyFileSync(join(app, 'node_modules/bnwasm/web/dist', wasm), join(app, 'dist', wasm));
      staticPage(app, '<script type="module" src="./main.js"></script>');
    },
  },
  {
    name: 'esbuild',
    template: null,
    bundler: 'esbuild',
    build(app) {
      // The README's esbuild section: the page and the worker entry, then the wasm beside them.
      run(app, bin('esbuild', 'bin/esbuild'), [
        'src/main.js',
        'node_modules/bnwasm/web/src/worker.js',
        '--bundle',
        '--format=esm',
        '--minify',
        '--outdir=dist',
        '--entry-names=[name]',
      ]);
      for (const wasm of ['bnwasm.wasm', 'bnwasm-dense.wasm', 'bnwasm-mt.wasm']) copyFileSync(join(app, 'node_modules/bnwasm/web/dist', wasm), join(app, 'dist', wasm));
      staticPage(app, '<script type="module" src="./main.js"></script>');
    },
  },
  {
    name: 'parcel',
    template: 'parcel',
    bundler: 'parcel',
    build(app) {
      const manifest = readFileSync(join(app, 'package.json'), 'utf8');
      run(app, process.execPath, [bin('parcel', 'lib/bin.js'), 'build', 'index.html', '--no-cache', '--no-autoinstall']);
      assert.equal(readFileSync(join(app, 'package.json'), 'utf8'), manifest, 'parcel build changed the app package.json');
    },
    // Parcel 2.16 writes an inline <script type="importmap"> (its bundle manifest) into every
    // page, which script-src 'self' blocks whatever the page imports: served without the policy.
    csp: false,
  },
  // An inline import map needs its hash in script-src, so this page is served without the policy.
  { name: 'importmap', template: 'importmap', bundler: null, root: '.', csp: false },
];

const ENGINES = engineNames();
/** Each page runs as a plain static host serves it and cross-origin isolated (COOP/COEP). */
const ISOLATION = [false, true];
const rows = [];
/** Per engine: {crossOriginIsolated, sharedArrayBuffer} as its pages saw them, per isolation. */
const seen = Object.fromEntries(ENGINES.map((e) => [e, {}]));
const browsers = {};
let tarball;

before(async () => {
  rmSync(CONSUMERS_DIR, { recursive: true, force: true });
  tarball = packPackage();
  // One at a time: the machine has two cores. An engine that does not start fails its own pages.
  for (const name of ENGINES) browsers[name] = await launch(name).catch((error) => error);
});

after(async () => {
  for (const browser of Object.values(browsers)) if (!(browser instanceof Error)) await browser.close().catch(() => {});
  const engineVersion = (name) => (browsers[name] instanceof Error ? 'did not start' : browsers[name]?.version ?? '?');
  const cell = (row, engine) => {
    const results = ISOLATION.map((isolated) => row.results[`${engine} ${isolated}`]);
    if (results.every((r) => r === 'pass')) return 'pass';
    return ISOLATION.map((isolated, k) => `${isolated ? 'isolated' : 'plain'}: ${results[k] ?? 'did not run'}`).join('; ');
  };
  printTable(`bnwasm consumers (${basename(tarball ?? '?')}), each page plain and cross-origin isolated:`, [
    ['consumer', 'version', 'mode', ...ENGINES.map((e) => `${e} ${engineVersion(e)}`)],
    ...rows.map((r) => [r.name, r.version, r.mode, ...ENGINES.map((e) => (r.skip ? `skipped: ${r.skip}` : cell(r, e)))]),
  ]);
  const feature = (engine, isolated) => {
    const env = seen[engine][isolated];
    return env ? `crossOriginIsolated ${env.crossOriginIsolated}, SharedArrayBuffer ${env.sharedArrayBuffer ? 'yes' : 'no'}` : 'no page ran';
  };
  printTable('what the pages saw (with SharedArrayBuffer the trainer runs on the threaded module, checked in the page):', [
    ['engine', 'plain static host', 'COOP/COEP'],
    ...ENGINES.map((e) => [`${e} ${engineVersion(e)}`, feature(e, false), feature(e, true)]),
  ]);
});

function printTable(title, table) {
  const widths = table[0].map((_, k) => Math.max(...table.map((r) => r[k].length)));
  console.log(`\n${title}`);
  for (const r of table) console.log(`  ${r.map((c, k) => c.padEnd(widths[k])).join('  ').trimEnd()}`);
}

test('npm pack: the files a consumer needs, and nothing else', () => {
  const { files, size, unpackedSize } = packedFileList();
  const paths = files.map((f) => f.path).sort();
  console.log(`# tarball ${size} bytes (${unpackedSize} unpacked), ${paths.length} files:\n#   ${paths.join('\n#   ')}`);
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const wanted = ['package.json', 'README.md', 'web/dist/bnwasm.mjs', 'web/dist/bnwasm.wasm', 'web/dist/bnwasm-dense.mjs', 'web/dist/bnwasm-dense.wasm', 'web/dist/bnwasm-mt.mjs', 'web/dist/bnwasm-mt.wasm'];
  if (existsSync(join(ROOT, 'LICENSE'))) wanted.push('LICENSE');
  // Every file the manifest points at: entries of every condition, types, side-effect list.
  const targets = (value) => (typeof value === 'string' ? [value] : Object.values(value ?? {}).flatMap(targets));
  for (const target of [...targets(manifest.exports), manifest.main, manifest.module, manifest.browser, manifest.types, ...manifest.sideEffects]) {
    wanted.push(target.replace(/^\.\//, ''));
  }
  for (const file of wanted) assert.ok(paths.includes(file), `${file} is not in the tarball`);
  // The ES module (web/src, its interop entry), the CommonJS entry generated from it, the wasm.
  const stray = paths.filter(
    (p) => !/^(package\.json|README\.md|LICENSE|web\/dist\/(bnwasm(-mt|-dense)?\.(mjs|wasm|cjs)|interop\.cjs|cjs\/(src|dist)\/[\w./-]+\.cjs)|web\/dist\/[\w.-]+\.d\.cts|web\/src\/(interop\/)?[\w.-]+\.(js|d\.ts))$/.test(p),
  );
  assert.deepEqual(stray, [], 'files in the tarball that no consumer needs');
});

/** build/consumers/<name>/: the template, the shared page code, and the packed bnwasm installed. */
function createApp(consumer) {
  const app = join(CONSUMERS_DIR, consumer.name);
  mkdirSync(join(app, 'src'), { recursive: true });
  if (consumer.template) cpSync(join(HERE, 'templates', consumer.template), app, { recursive: true });
  // webpack's zero-config entry is src/index.js; the others name src/main.js.
  copyFileSync(join(HERE, 'app', 'main.js'), join(app, 'src', consumer.name === 'webpack' ? 'index.js' : 'main.js'));
  const manifest = { name: `consumer-${consumer.name}`, private: true, type: 'module', dependencies: { bnwasm: `file:${tarball}` } };
  writeFileSync(join(app, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  run(app, 'npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline']);
  return app;
}

/**
 * The page at `origin` in every engine, plain and cross-origin isolated: one test each, named by
 * consumer, mode and engine, so a failure names its engine.
 */
function pageTests(consumer, row, origin) {
  for (const engine of ENGINES) {
    for (const isolated of ISOLATION) {
      const how = isolated ? 'cross-origin isolated' : 'plain';
      test(`${engine}, ${how}`, async () => {
        const key = `${engine} ${isolated}`;
        row.results[key] = 'FAIL: did not run';
        const browser = browsers[engine];
        if (browser instanceof Error) throw browser;
        // A page whose first run finds problems runs once more, and the log says so in a line of
        // its own (RETRIED; npm test's summary lists them): Firefox ESR with threads (cross-origin
        // isolated) has stalled intermittently, once here (Parcel's page, 120 s without its
        // checks) where 12 other isolated pages passed; the cause is not found yet. Two failed
        // runs fail the test.
        for (let attempt = 1; ; attempt++) {
          const site = await watch(origin(), { headers: isolated ? ISOLATION_HEADERS : {} });
          try {
            const outcome = await runPage(browser, site);
            const found = problems(outcome);
            if (outcome.env && outcome.env.crossOriginIsolated !== isolated) found.push(`crossOriginIsolated is ${outcome.env.crossOriginIsolated} on a ${how} page`);
            if (outcome.env) seen[engine][isolated] ??= outcome.env;
            row.results[key] = found.length === 0 ? (attempt === 1 ? 'pass' : 'pass (2nd)') : `FAIL: ${found[0].slice(0, 140)}`;
            if (found.length > 0 && attempt === 1) {
              console.log(`# RETRIED ${consumer.name} ${row.mode}, ${engine}, ${how}: the first run failed, running it again: ${found[0].slice(0, 200)}`);
              continue;
            }
            assert.deepEqual(found, [], `${consumer.name} ${row.mode}, ${engine}, ${how}:\n  ${found.join('\n  ')}`);
            return;
          } finally {
            await site.close();
          }
        }
      });
    }
  }
}

const freePort = () =>
  new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** Starts `vite` (dev) in the app; resolves once it serves, with its URL and a stop(). */
async function startDevServer(app, args) {
  const port = await freePort();
  // No colours: with CI set (as on CI machines) Vite colours its banner even into a pipe, and the
  // escape codes split the port number it prints.
  const child = spawn(process.execPath, [...args, '--port', String(port), '--strictPort', '--host', '127.0.0.1'], {
    cwd: app,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = () => new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : (child.once('exit', resolve), child.kill())));
  let output = '';
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dev server did not start:\n${output}`)), 60_000);
      const onData = (data) => {
        output += data;
        // eslint-disable-next-line no-control-regex
        if (output.replace(/\x1b\[[0-9;]*m/g, '').includes(`:${port}`)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`dev server exited with ${code}:\n${output}`));
      });
    });
  } catch (error) {
    // A server that never said it was ready still runs: stop it, or it keeps this process alive.
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}/`, stop };
}

for (const consumer of CONSUMERS) {
  if (only && !only.some((name) => consumer.name.includes(name))) continue;
  const bundlerVersion = consumer.bundler ? version(consumer.bundler) : '-';
  const skip = consumer.minNode && !nodeAtLeast(consumer.minNode) ? `${consumer.name} needs Node >= ${consumer.minNode}, this is ${process.versions.node}` : false;
  const csp = consumer.csp !== false;
  const prod = { name: consumer.name, version: bundlerVersion, mode: `${consumer.bundler ? 'prod' : 'no build'}${csp ? ', CSP' : ''}`, results: {}, skip };
  rows.push(prod);
  let app;
  // The build once, then its page in every engine; a failed build fails every page after it.
  describe(`${consumer.name} ${bundlerVersion} production build`, { skip }, () => {
    let server;
    before(async () => {
      app = createApp(consumer);
      try {
        consumer.build?.(app);
      } catch (error) {
        for (const engine of ENGINES) for (const isolated of ISOLATION) prod.results[`${engine} ${isolated}`] = `FAIL: build: ${firstError(error.message)}`;
        throw error;
      }
      server = await serveStatic(join(app, consumer.root ?? 'dist'), csp ? { 'Content-Security-Policy': STRICT_CSP } : {});
    });
    after(() => server?.close());
    pageTests(consumer, prod, () => server.url);
  });
  if (!consumer.dev) continue;
  const dev = { name: consumer.name, version: bundlerVersion, mode: 'dev', results: {}, skip };
  rows.push(dev);
  describe(`${consumer.name} ${bundlerVersion} dev server`, { skip }, () => {
    let server;
    before(async () => {
      app ??= createApp(consumer);
      rmSync(join(app, 'node_modules', '.vite'), { recursive: true, force: true });
      server = await startDevServer(app, consumer.dev);
    });
    after(() => server?.stop());
    pageTests(consumer, dev, () => server.url);
  });
}

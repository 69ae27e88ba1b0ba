#!/usr/bin/env node
// The Node half of the consumer suite: packs the package (npm pack), installs the tarball into
// fresh minimal apps under build/consumers/<app>/ made from tests/consumers/node/apps/, and runs
// each with every Node binary given: a Node ES module script, a CommonJS script, Jest 29 with its
// default configuration, Vitest, node --test, and TypeScript --strict (node16,
// nodenext, node10, bundler + DOM; ES module and CommonJS). Every app goes through
// tests/consumers/node/scenario.cjs (create, train, predict, save/load, createTrainer
// fit/snapshot/predict, an InputError from the worker, dispose/terminate) and must exit on its
// own. Prints a table (consumer, Node, tool, result); exits non-zero if any run failed.
//
//   node tests/consumers/node-consumers.mjs [--node PATH]... [--only NAME,...] [--json FILE]
//
// The Node running this script is always one of the Nodes; --node (or BNWASM_CONSUMER_NODES,
// paths separated by ':') adds others, e.g. Debian 12's own Node 18. The tools are the ones the
// root package.json pins (devDependencies, lockfile); the apps find them in the root
// node_modules, above build/consumers/, and find bnwasm only in their own node_modules.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { packPackage } from './lib/pack.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const consumersDir = path.join(root, 'build/consumers');
const templates = path.join(root, 'tests/consumers/node');
const modules = path.join(root, 'node_modules');
const semver = createRequire(path.join(root, 'package.json'))('semver');
/** Apps set up and run at once (each app's runs are in sequence). */
const JOBS = Number(process.env.BNWASM_CONSUMER_JOBS ?? 2);
/** A run that has not ended by then hangs (a worker or handle left alive) and fails. */
const TIMEOUT_MS = Number(process.env.BNWASM_CONSUMER_TIMEOUT_MS ?? 300_000);

// ---- The apps ---------------------------------------------------------------------------------

const tsc = path.join(modules, 'typescript/bin/tsc');

/**
 * A TypeScript app: its tsconfig compilerOptions, package type, and whether its output runs in
 * Node. The type check does not depend on the Node that runs tsc: it runs once, with the first Node.
 */
function typescriptApp(name, type, compilerOptions, runs) {
  return {
    name,
    template: 'typescript',
    type,
    tool: 'typescript',
    tsconfig: { compilerOptions: { strict: true, target: 'es2022', ...compilerOptions }, files: ['consumer.ts'] },
    steps: (node, first) => [...(first ? [[tsc, '-p', '.']] : []), ...(runs ? [['dist/consumer.js']] : [])],
    note: (node, first) => (first ? (runs ? 'tsc, run' : 'tsc') : 'run'),
  };
}

const nodeTypes = { types: ['node'], outDir: 'dist', rootDir: '.' };
const APPS = [
  { name: 'node-esm', template: 'esm', type: 'module', steps: () => [['index.mjs']] },
  {
    name: 'node-cjs',
    template: 'cjs',
    type: 'commonjs',
    // Where Node could require() an ES module (20.19+), it may not: as on Node 18 and 20 < 20.19,
    // only a CommonJS entry can serve require('bnwasm').
    steps: (node) => [[...(node.canRequireEsm ? ['--no-experimental-require-module'] : []), 'index.js']],
    note: (node) => (node.canRequireEsm ? 'require(esm) off' : ''),
  },
  { name: 'jest29', template: 'jest', type: 'commonjs', tool: 'jest', steps: () => [[path.join(modules, 'jest/bin/jest.js')]] },
  { name: 'vitest', template: 'vitest', type: 'module', tool: 'vitest', steps: () => [[path.join(modules, 'vitest/vitest.mjs'), 'run']] },
  { name: 'node-test', template: 'node-test', type: 'commonjs', steps: () => [['--test']] },
  typescriptApp('ts-node16-esm', 'module', { module: 'node16', moduleResolution: 'node16', ...nodeTypes }, true),
  typescriptApp('ts-node16-cjs', 'commonjs', { module: 'node16', moduleResolution: 'node16', ...nodeTypes }, true),
  typescriptApp('ts-nodenext-esm', 'module', { module: 'nodenext', moduleResolution: 'nodenext', ...nodeTypes }, true),
  typescriptApp('ts-nodenext-cjs', 'commonjs', { module: 'nodenext', moduleResolution: 'nodenext', ...nodeTypes }, true),
  // The resolution older CommonJS projects still use: no `exports`, `types` and `main`.
  typescriptApp('ts-node10-cjs', 'commonjs', { module: 'commonjs', moduleResolution: 'node10', ...nodeTypes }, true),
  typescriptApp(
    'ts-bundler-dom',
    'module',
    { module: 'esnext', moduleResolution: 'bundler', lib: ['es2022', 'dom'], types: [], noEmit: true },
    false,
  ),
];

// ---- Arguments --------------------------------------------------------------------------------

function parseArgs(argv) {
  const options = { nodes: [process.execPath], only: null, json: null };
  for (const extra of (process.env.BNWASM_CONSUMER_NODES ?? '').split(':').filter(Boolean)) options.nodes.push(extra);
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    if (argv[i] === '--node') options.nodes.push(value);
    else if (argv[i] === '--only') options.only = value.split(',');
    else if (argv[i] === '--json') options.json = value;
    else throw new Error(`node-consumers: unknown argument ${argv[i]}`);
    i++;
  }
  options.nodes = options.nodes.map((binary) => path.resolve(binary)); // apps run in their own folders
  return options;
}

/** Version and abilities of a Node binary. */
function describeNode(binary) {
  const script = "console.log(JSON.stringify({ version: process.version, canRequireEsm: process.allowedNodeEnvironmentFlags.has('--no-experimental-require-module') }))";
  const info = JSON.parse(execFileSync(binary, ['-e', script], { encoding: 'utf8' }));
  return { binary, ...info };
}

const versionOf = (dir) => JSON.parse(readFileSync(path.join(modules, dir, 'package.json'), 'utf8'));

// ---- Creating and running an app --------------------------------------------------------------

async function createApp(app, tarball) {
  const dir = path.join(consumersDir, app.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(path.join(templates, 'apps', app.template), dir, { recursive: true });
  cpSync(path.join(templates, 'scenario.cjs'), path.join(dir, 'scenario.cjs'));
  const manifest = {
    name: `bnwasm-consumer-${app.name}`,
    private: true,
    type: app.type,
    dependencies: { bnwasm: `file:${path.relative(dir, tarball)}` },
  };
  writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  if (app.tsconfig) writeFileSync(path.join(dir, 'tsconfig.json'), `${JSON.stringify(app.tsconfig, null, 2)}\n`);
  await promisify(execFile)('npm', ['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error'], {
    cwd: dir,
    env: cleanEnv(),
  });
  if (!existsSync(path.join(dir, 'node_modules/bnwasm/package.json'))) throw new Error(`npm did not install bnwasm into ${dir}`);
  return dir;
}

/** The environment a user's shell would have: none of this repository's Node settings. */
function cleanEnv() {
  const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
  for (const key of ['NODE_OPTIONS', 'NODE_PATH', 'npm_config_prefix']) delete env[key];
  for (const key of Object.keys(env)) if (key.startsWith('npm_') || key.startsWith('JEST_') || key.startsWith('VITEST')) delete env[key];
  return env;
}

// Messages with which test runners report a process that would not end (a worker or handle left alive).
const HANG_SIGNS = [/did not exit one second after/i, /failed to exit gracefully/i, /close timed out/i, /prevents Vite server from exiting/i, /open handle/i];

/**
 * Runs one command to its end; resolves {code, output, timedOut}. A run whose test runner says
 * the process will not end is stopped a few seconds later rather than at the timeout.
 */
function run(binary, args, cwd) {
  return new Promise((resolve) => {
    const child = spawn(binary, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let timedOut = false;
    let hung = null;
    const collect = (chunk) => {
      output += chunk;
      if (!hung && HANG_SIGNS.some((re) => re.test(output))) hung = setTimeout(() => child.kill('SIGKILL'), 5000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, TIMEOUT_MS);
    child.on('error', (error) => (output += `cannot run ${binary}: ${error.message}\n`));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(hung);
      resolve({ code: code ?? signal, output, timedOut });
    });
  });
}

async function runApp(app, dir, node, first, logDir) {
  const tool = app.tool ? versionOf(app.tool) : null;
  const row = {
    consumer: app.name,
    node: node.version + (app.note?.(node, first) ? ` (${app.note(node, first)})` : ''),
    tool: tool ? `${tool.name} ${tool.version}` : `node ${node.version}`,
    result: 'pass',
    seconds: 0,
    detail: '',
  };
  if (tool?.engines?.node && !semver.satisfies(node.version, tool.engines.node)) {
    return { ...row, result: 'skip', detail: `${tool.name} ${tool.version} needs node ${tool.engines.node}` };
  }
  const started = Date.now();
  const log = [];
  for (const args of app.steps(node, first)) {
    const { code, output, timedOut } = await run(node.binary, args, dir);
    log.push(`$ node ${args.map((a) => (path.isAbsolute(a) ? path.relative(dir, a) : a)).join(' ')}  (exit ${code})\n${output}`);
    const hang = HANG_SIGNS.find((re) => re.test(output));
    if (timedOut || code !== 0 || hang) {
      row.result = 'FAIL';
      row.detail = timedOut ? `did not exit within ${TIMEOUT_MS / 1000} s` : hang ? `did not end cleanly: ${hang}` : `exit ${code}`;
      break;
    }
  }
  row.seconds = (Date.now() - started) / 1000;
  const logFile = path.join(logDir, `${app.name}@${node.version}.log`);
  writeFileSync(logFile, log.join('\n'));
  if (row.result === 'FAIL') {
    const lines = log.join('\n').trimEnd().split('\n');
    console.log(`--- ${app.name} on node ${node.version}: ${row.detail} (last lines of ${path.relative(root, logFile)})`);
    console.log(lines.slice(-40).join('\n'));
  }
  return row;
}

// ---- The package as packed --------------------------------------------------------------------

/** The files the Node entries need are in the tarball; engines admits every Node tested. */
function packageRows(tarball, nodes) {
  const listed = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
  const needed = ['web/dist/bnwasm.cjs', 'web/dist/interop.cjs', 'web/dist/cjs/src/index.node.cjs', 'web/dist/cjs/src/interop/index.node.cjs', 'web/dist/cjs/dist/bnwasm.cjs', 'web/dist/bnwasm.d.cts', 'web/dist/interop.d.cts', 'web/dist/trainer.d.cts', 'web/dist/bnwasm.mjs', 'web/dist/bnwasm.wasm', 'web/dist/bnwasm-dense.mjs', 'web/dist/bnwasm-dense.wasm', 'web/dist/cjs/dist/bnwasm-dense.cjs', 'web/src/index.js', 'web/src/index.d.ts', 'web/src/worker.js'];
  const missing = needed.filter((file) => !listed.includes(`package/${file}`));
  const { engines } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  const outside = nodes.filter((node) => !semver.satisfies(node.version, engines.node)).map((node) => node.version);
  return [
    { consumer: 'packed files', node: '', tool: 'npm pack', result: missing.length ? 'FAIL' : 'pass', seconds: 0, detail: missing.length ? `missing ${missing.join(', ')}` : '' },
    { consumer: 'engines', node: nodes.map((n) => n.version).join(', '), tool: `node ${engines.node}`, result: outside.length ? 'FAIL' : 'pass', seconds: 0, detail: outside.length ? `engines excludes ${outside.join(', ')}` : '' },
  ];
}

// ---- Main -------------------------------------------------------------------------------------

function printTable(rows) {
  const head = ['consumer', 'node', 'tool', 'result', 'time'];
  const cells = rows.map((r) => [r.consumer, r.node, r.tool, r.result + (r.detail ? `: ${r.detail}` : ''), r.seconds ? `${r.seconds.toFixed(1)} s` : '']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const c of cells) console.log(line(c));
}

const options = parseArgs(process.argv.slice(2));
const nodes = [...new Set(options.nodes)].map(describeNode);
const apps = options.only ? APPS.filter((app) => options.only.includes(app.name)) : APPS;
if (apps.length === 0) throw new Error(`node-consumers: no app named ${options.only}`);
const logDir = path.join(consumersDir, 'logs');
rmSync(logDir, { recursive: true, force: true });
mkdirSync(logDir, { recursive: true });

console.log(`node-consumers: npm pack (prepack builds web/dist)`);
const tarball = await packPackage();
console.log(`node-consumers: ${path.relative(root, tarball)}, ${apps.length} apps x ${nodes.length} Node (${nodes.map((n) => n.version).join(', ')})`);
const rows = packageRows(tarball, nodes);

/** Sets up one app and runs it with each Node; resolves its rows. */
async function testApp(app) {
  let dir;
  try {
    dir = await createApp(app, tarball);
  } catch (error) {
    console.log(`--- ${app.name}: npm install failed\n${error.message}\n${error.stderr ?? ''}`);
    return [{ consumer: app.name, node: '', tool: 'npm install', result: 'FAIL', seconds: 0, detail: 'npm install failed' }];
  }
  const appRows = [];
  for (const [k, node] of nodes.entries()) {
    if (app.steps(node, k === 0).length === 0) continue;
    const row = await runApp(app, dir, node, k === 0, logDir);
    console.log(`  ${row.consumer} on node ${node.version}: ${row.result}${row.detail ? ` (${row.detail})` : ''}`);
    appRows.push(row);
  }
  return appRows;
}

const results = new Array(apps.length);
let next = 0;
const worker = async () => {
  while (next < apps.length) {
    const k = next++;
    results[k] = await testApp(apps[k]);
  }
};
await Promise.all(Array.from({ length: Math.max(1, JOBS) }, worker));
rows.push(...results.flat());

printTable(rows);
const count = (result) => rows.filter((r) => r.result === result).length;
const summary = { passed: count('pass'), failed: count('FAIL'), skipped: count('skip'), rows };
console.log(`node consumers: ${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`);
if (options.json) writeFileSync(options.json, `${JSON.stringify(summary, null, 2)}\n`);
process.exit(summary.failed > 0 || summary.passed === 0 ? 1 : 0);

#!/usr/bin/env node
// npm start: serves the demo (web/demo/) on localhost and prints its address. On a fresh
// clone it first installs what the demo needs (scripts/setup.sh start), builds the wasm module
// and prepares the Fashion-MNIST file the page loads.
//   npm start [-- --port N]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { prepareDemoData } from './prepare-demo-data.mjs';
import { serve } from './serve.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Stops with a one-line message: every failure here is the user's to fix, not a bug to trace. */
function fail(message, status = 1) {
  if (message) console.error(`start: ${message}`);
  process.exit(status);
}

/** Runs one of the repository's bash scripts; it explains its own failures. */
function run(script, ...args) {
  const { status, error } = spawnSync('bash', [script, ...args], { cwd: root, stdio: 'inherit' });
  if (error) fail(`cannot run bash ${script}: ${error.message}`);
  if (status !== 0) fail('', status ?? 1);
}

let port;
try {
  const { values } = parseArgs({ options: { port: { type: 'string', default: process.env.PORT ?? '8080' } } });
  port = Number(values.port);
} catch (error) {
  fail(`${error.message} (usage: npm start [-- --port N])`, 2);
}

run('scripts/setup.sh', 'start');
if (!existsSync(new URL('../web/dist/bnwasm.wasm', import.meta.url))) {
  console.log('start: web/dist/bnwasm.wasm is missing, building it (npm run build)');
  run('scripts/build.sh');
}
try {
  prepareDemoData();
} catch (error) {
  fail(error.message);
}
run('scripts/setup.sh', 'give-back');
try {
  const { url } = await serve({ port });
  console.log(`bnwasm demo: ${url}  (Ctrl+C stops it)`);
} catch (error) {
  fail(`cannot serve the demo on port ${port}: ${error.message}`);
}

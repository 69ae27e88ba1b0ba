#!/usr/bin/env node
// npm start: serves the demo (web/demo/) on localhost and prints its address. On a fresh
// clone it first builds the wasm module and prepares the Fashion-MNIST file the page loads.
//   npm start [-- --port N]
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { prepareDemoData } from './prepare-demo-data.mjs';
import { serve } from './serve.mjs';

const { values } = parseArgs({ options: { port: { type: 'string', default: process.env.PORT ?? '8080' } } });
const root = fileURLToPath(new URL('..', import.meta.url));
if (!existsSync(new URL('../web/dist/bnwasm.wasm', import.meta.url))) {
  console.log('start: web/dist/bnwasm.wasm is missing, building it (npm run build)');
  execFileSync('bash', ['scripts/build.sh'], { cwd: root, stdio: 'inherit' });
}
prepareDemoData();
const { url } = await serve({ port: Number(values.port) });
console.log(`bnwasm demo: ${url}  (Ctrl+C stops it)`);

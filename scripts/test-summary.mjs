#!/usr/bin/env node
// Sums up the logs of scripts/test.sh into one closing line:
//   "bnwasm: N passed, M failed[, K skipped]" (GoogleTest cases in each build, fuzz runs as
//   one check, Jest tests, browser end-to-end tests, consumer builds and pages; a consumer that
//   needs a newer Node is skipped, never counted as passed). Exits non-zero if any failed
//   or if a suite reported nothing.
import { readFileSync } from 'node:fs';

const dir = process.argv[2];
const cpp = readFileSync(`${dir}/cpp.log`, 'utf8');
const jest = JSON.parse(readFileSync(`${dir}/jest.json`, 'utf8'));
const e2e = readFileSync(`${dir}/e2e.log`, 'utf8');
const consumers = readFileSync(`${dir}/consumers.log`, 'utf8');

const gtestPassed = [...cpp.matchAll(/\[ {2}PASSED {2}\] (\d+) tests?\./g)].map((m) => Number(m[1]));
const gtestFailed = [...cpp.matchAll(/\[ {2}FAILED {2}\] (\d+) tests?,/g)].map((m) => Number(m[1]));
const fuzz = /Done (\d+) runs/.exec(cpp);
// node:test's closing counts (TAP comments).
const tap = (log, what) => Number(new RegExp(`^# ${what} (\\d+)`, 'm').exec(log)?.[1] ?? 0);

const rows = [
  ['C++ (native, sanitizers, wasm)', gtestPassed.reduce((a, b) => a + b, 0), gtestFailed.reduce((a, b) => a + b, 0)],
  ['fuzz (model loader)', fuzz ? 1 : 0, fuzz ? 0 : 1],
  ['Jest', jest.numPassedTests, jest.numFailedTests],
  ['browser end-to-end', tap(e2e, 'pass'), tap(e2e, 'fail')],
  ['consumers (bundlers, browsers)', tap(consumers, 'pass'), tap(consumers, 'fail') + tap(consumers, 'cancelled')],
];
const skipped = tap(consumers, 'skipped');
for (const [name, passed, failed] of rows) console.log(`  ${name.padEnd(32)} ${passed} passed, ${failed} failed`);
const passed = rows.reduce((a, r) => a + r[1], 0);
const failed = rows.reduce((a, r) => a + r[2], 0);
const empty = rows.filter((r) => r[1] + r[2] === 0).map((r) => r[0]);
if (gtestPassed.length < 3) console.log(`  expected 3 GoogleTest runs, found ${gtestPassed.length}`);
console.log(`bnwasm: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || empty.length > 0 || gtestPassed.length < 3 ? 1 : 0);

#!/usr/bin/env node
// Sums up the logs of scripts/test.sh into one closing line:
//   "bnwasm: N passed, M failed" (GoogleTest cases in each build, fuzz runs as
//   one check, Jest tests, browser end-to-end tests, Node consumer runs). Exits non-zero if any failed
//   or if a suite reported nothing.
import { existsSync, readFileSync } from 'node:fs';

const dir = process.argv[2];
const cpp = readFileSync(`${dir}/cpp.log`, 'utf8');
const jest = JSON.parse(readFileSync(`${dir}/jest.json`, 'utf8'));
const e2e = readFileSync(`${dir}/e2e.log`, 'utf8');
// The Node consumer suite writes its counts; no file means it did not get to the end.
const consumersFile = `${dir}/consumers-node.json`;
const consumers = existsSync(consumersFile) ? JSON.parse(readFileSync(consumersFile, 'utf8')) : { passed: 0, failed: 1 };

const gtestPassed = [...cpp.matchAll(/\[ {2}PASSED {2}\] (\d+) tests?\./g)].map((m) => Number(m[1]));
const gtestFailed = [...cpp.matchAll(/\[ {2}FAILED {2}\] (\d+) tests?,/g)].map((m) => Number(m[1]));
const fuzz = /Done (\d+) runs/.exec(cpp);
const e2ePass = Number(/^# pass (\d+)/m.exec(e2e)?.[1] ?? 0);
const e2eFail = Number(/^# fail (\d+)/m.exec(e2e)?.[1] ?? 0);

const rows = [
  ['C++ (native, sanitizers, wasm)', gtestPassed.reduce((a, b) => a + b, 0), gtestFailed.reduce((a, b) => a + b, 0)],
  ['fuzz (model loader)', fuzz ? 1 : 0, fuzz ? 0 : 1],
  ['Jest', jest.numPassedTests, jest.numFailedTests],
  ['browser end-to-end', e2ePass, e2eFail],
  ['Node consumers (packed package)', consumers.passed, consumers.failed],
];
for (const [name, passed, failed] of rows) console.log(`  ${name.padEnd(32)} ${passed} passed, ${failed} failed`);
const passed = rows.reduce((a, r) => a + r[1], 0);
const failed = rows.reduce((a, r) => a + r[2], 0);
const empty = rows.filter((r) => r[1] + r[2] === 0).map((r) => r[0]);
if (gtestPassed.length < 3) console.log(`  expected 3 GoogleTest runs, found ${gtestPassed.length}`);
console.log(`bnwasm: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || empty.length > 0 || gtestPassed.length < 3 ? 1 : 0);

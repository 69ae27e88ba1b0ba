#!/usr/bin/env node
// Sums up the logs of scripts/test.sh into one closing line:
//   "bnwasm: N passed, M failed[, K skipped]" (GoogleTest cases in each build, fuzz runs as
//   one check, Jest tests, browser end-to-end tests, browser consumer builds and pages, Node
//   consumer runs; a consumer that needs a newer Node is skipped, never counted as passed),
//   after a table of every browser page run, page x engine, and the counts per engine.
//   Exits non-zero if any failed or if a suite reported nothing.
import { existsSync, readFileSync } from 'node:fs';

const dir = process.argv[2];
const cpp = readFileSync(`${dir}/cpp.log`, 'utf8');
const jest = JSON.parse(readFileSync(`${dir}/jest.json`, 'utf8'));
const e2e = readFileSync(`${dir}/e2e.log`, 'utf8');
const browserConsumers = existsSync(`${dir}/consumers.log`) ? readFileSync(`${dir}/consumers.log`, 'utf8') : '';
// The Node consumer suite writes its counts; no file means it did not get to the end.
const nodeFile = `${dir}/consumers-node.json`;
const nodeConsumers = existsSync(nodeFile) ? JSON.parse(readFileSync(nodeFile, 'utf8')) : { passed: 0, failed: 1 };

const gtestPassed = [...cpp.matchAll(/\[ {2}PASSED {2}\] (\d+) tests?\./g)].map((m) => Number(m[1]));
const gtestFailed = [...cpp.matchAll(/\[ {2}FAILED {2}\] (\d+) tests?,/g)].map((m) => Number(m[1]));
const fuzz = /Done (\d+) runs/.exec(cpp);
// node:test's closing counts (TAP comments).
const tap = (log, what) => Number(new RegExp(`^# ${what} (\\d+)`, 'm').exec(log)?.[1] ?? 0);

const ENGINES = ['chromium', 'firefox', 'webkit'];

/**
 * The browser tests of a node:test TAP log that ran in one engine: {page, engine, ok}. A test
 * names its engine first ('webkit: the demo trains…', or 'firefox, plain' under its consumer's
 * suite); the page is the rest of its name, after its suite's name where the test has no other.
 */
function enginePages(log) {
  const subtests = [];
  const runs = [];
  for (const line of log.split('\n')) {
    const subtest = /^( *)# Subtest: (.*)$/.exec(line);
    if (subtest) subtests[subtest[1].length] = subtest[2];
    const result = /^( *)(not )?ok \d+ - (.*?)(?: # SKIP.*)?$/.exec(line);
    const named = result && /^(chromium|firefox|webkit)([:,]) (.*)$/.exec(result[3]);
    if (!named || / # SKIP/.test(line)) continue;
    const [, engine, mark, rest] = named;
    const page = mark === ',' ? `${subtests[result[1].length - 4] ?? '?'}, ${rest}` : rest;
    runs.push({ page, engine, ok: !result[2] });
  }
  return runs;
}

const pageRuns = [...enginePages(e2e), ...enginePages(browserConsumers)];
if (pageRuns.length > 0) {
  const pages = [...new Set(pageRuns.map((r) => r.page))];
  const cell = (page, engine) => {
    const run = pageRuns.find((r) => r.page === page && r.engine === engine);
    return run ? (run.ok ? 'pass' : 'FAIL') : '-';
  };
  const width = Math.min(110, Math.max(...pages.map((p) => p.length)));
  console.log(`browser pages x engines (${pageRuns.length} runs):`);
  console.log(`  ${'page'.padEnd(width)}  ${ENGINES.map((e) => e.padEnd(8)).join(' ')}`.trimEnd());
  for (const page of pages) console.log(`  ${page.slice(0, width).padEnd(width)}  ${ENGINES.map((e) => cell(page, e).padEnd(8)).join(' ')}`.trimEnd());
  for (const engine of ENGINES) {
    const runs = pageRuns.filter((r) => r.engine === engine);
    console.log(`  ${engine}: ${runs.filter((r) => r.ok).length} passed, ${runs.filter((r) => !r.ok).length} failed`);
  }
}

const rows = [
  ['C++ (native, sanitizers, wasm)', gtestPassed.reduce((a, b) => a + b, 0), gtestFailed.reduce((a, b) => a + b, 0)],
  ['fuzz (model loader)', fuzz ? 1 : 0, fuzz ? 0 : 1],
  ['Jest', jest.numPassedTests, jest.numFailedTests],
  ['browser end-to-end', tap(e2e, 'pass'), tap(e2e, 'fail') + tap(e2e, 'cancelled')],
  ['consumers (bundlers, browsers)', tap(browserConsumers, 'pass'), tap(browserConsumers, 'fail') + tap(browserConsumers, 'cancelled')],
  ['consumers (Node, packed package)', nodeConsumers.passed, nodeConsumers.failed],
];
const skipped = tap(browserConsumers, 'skipped') + (nodeConsumers.skipped ?? 0);
for (const [name, passed, failed] of rows) console.log(`  ${name.padEnd(34)} ${passed} passed, ${failed} failed`);
const passed = rows.reduce((a, r) => a + r[1], 0);
const failed = rows.reduce((a, r) => a + r[2], 0);
const empty = rows.filter((r) => r[1] + r[2] === 0).map((r) => r[0]);
if (empty.length > 0) console.log(`  reported nothing: ${empty.join(', ')}`);
if (gtestPassed.length < 3) console.log(`  expected 3 GoogleTest runs, found ${gtestPassed.length}`);
// Browser tests and consumer pages run a second time after a failed first attempt ("# RETRIED ..."), each named.
const retried = `${e2e}\n${browserConsumers}`.split('\n').filter((line) => line.startsWith('# RETRIED '));
if (retried.length > 0) console.log(`  browser runs that failed once and were run again (${retried.length}):\n${retried.map((l) => `    ${l.slice(2)}`).join('\n')}`);
console.log(`bnwasm: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || empty.length > 0 || gtestPassed.length < 3 ? 1 : 0);

// Drives a consumer page (tests/consumers/app/main.js) in one browser engine and reports what
// the page found, the errors seen (by the driver and in the page) and how the server answered
// (the harness proxy's log: the same in every engine).
import { Page } from '../../browsers/page.mjs';

const PAGE_BUDGET_MS = 120_000;
/** The checks tests/consumers/app/main.js makes; all of them must run. */
export const CONSUMER_CHECKS = 14;

/**
 * Opens the page `site` proxies in `browser` (tests/browsers/engines.mjs), waits for its checks
 * and returns {result, env, errors, requests}: env is {crossOriginIsolated, sharedArrayBuffer}
 * as the page saw them; requests are the proxy log's entries of this run.
 */
export async function runPage(browser, site) {
  const page = await Page.open(browser);
  const from = site.log.length;
  let result;
  let env = null;
  try {
    await page.goto(site.url);
    await page.waitFor(() => window.bnwasmConsumer?.done === true, [], { timeout: PAGE_BUDGET_MS, interval: 200, what: "the page's checks (window.bnwasmConsumer.done)" });
    result = await page.evaluate(() => window.bnwasmConsumer);
    env = await page.env();
  } catch (error) {
    result = { done: false, checks: [], error: error.message };
  }
  const errors = await page.errors().catch((error) => [`could not read errors: ${error.message}`]);
  await page.close().catch(() => {});
  return { result, env, errors, requests: site.log.slice(from) };
}

/** The problems in a runPage() outcome; an empty list means the consumer works. */
export function problems({ result, errors, requests }) {
  const found = [];
  if (result.error) found.push(`page: ${result.error}`);
  for (const c of result.checks) if (!c.ok) found.push(`check failed: ${c.name} (${c.detail})`);
  if (!result.error && result.checks.length !== CONSUMER_CHECKS) found.push(`${result.checks.length} of ${CONSUMER_CHECKS} checks ran`);
  for (const e of errors) found.push(e);
  for (const r of requests) if (r.status >= 400) found.push(`request ${r.path} answered ${r.status} ${r.type}`);
  const wasm = requests.filter((r) => /\.wasm$/.test(r.path));
  if (!wasm.some((r) => r.status === 200 && r.type.startsWith('application/wasm'))) {
    found.push(`no wasm request answered 200 application/wasm (${wasm.map((r) => `${r.path} ${r.status}`).join(', ') || 'none'})`);
  }
  // A worker's script is fetched with Sec-Fetch-Dest: worker, in every engine.
  if (!requests.some((r) => r.dest === 'worker')) found.push('no worker script was requested');
  return found;
}

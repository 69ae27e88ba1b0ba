// The browser harness's own test: a page full of faults (fixtures/faults/) must be reported as
// faulty in every engine, or a clean run of the other browser tests would mean nothing. The
// page logs a console error, leaves a rejection unhandled, throws from an event handler, asks
// for a file that is not there, starts a worker, and has an inline script that the
// Content-Security-Policy blocks. Also checks that the cross-origin isolation parameter of a
// page run works, and prints what each engine reports for it.
//   node --test tests/browsers/harness.test.mjs         BNWASM_BROWSERS=webkit: one engine
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '../consumers/lib/serve.mjs';
import { engineNames, launch } from './engines.mjs';
import { Page } from './page.mjs';
import { ISOLATION_HEADERS, watch } from './proxy.mjs';

const FAULTS = fileURLToPath(new URL('./fixtures/faults/', import.meta.url));

let server;
before(async () => {
  server = await serveStatic(FAULTS, { 'Content-Security-Policy': "script-src 'self'" });
});
after(() => server?.close());

for (const engine of engineNames()) {
  describe(engine, () => {
    let browser;
    before(async () => {
      browser = await launch(engine);
    });
    after(() => browser?.close());

    test(`${engine}: every fault of the page is reported`, async () => {
      const site = await watch(server.url);
      const page = await Page.open(browser);
      try {
        await page.goto(site.url);
        await page.waitFor(() => window.faultsDone === true, [], { what: 'the faults page' });
        const errors = await page.errors();
        console.log(`${engine} ${browser.version}: ${errors.length} errors reported:\n  ${errors.join('\n  ')}`);
        const reported = (pattern) => errors.some((e) => pattern.test(e));
        // Collected in the page (collector.js), so in every engine.
        assert.ok(reported(/^page: console\.error: fault: console\.error from the page/), 'console.error of the page');
        assert.ok(reported(/^page: unhandled rejection: Error: fault: a rejection nobody handles/), 'the unhandled rejection');
        assert.ok(reported(/^page: uncaught: .*fault: an uncaught error/), 'the uncaught error');
        assert.ok(reported(/^page: Content-Security-Policy blocked inline/), 'the inline script the policy blocked');
        assert.equal(await page.evaluate(() => window.inlineRan ?? false), false, 'the inline script ran despite the policy');
        // Where the driver reports console events (not classic WebDriver), a worker's too.
        if (engine !== 'webkit') assert.ok(reported(/fault: console\.error from the worker/), "the worker's console.error");
        // The proxy's log: the missing file and the worker script, with Sec-Fetch-Dest.
        assert.deepEqual(
          site.log.filter((r) => r.status >= 400).map((r) => `${r.path} ${r.status}`),
          ['/missing.txt 404'],
        );
        assert.deepEqual(site.log.filter((r) => r.dest === 'worker').map((r) => `${r.path} ${r.status}`), ['/worker.js 200']);
        // clearErrors() forgets them.
        await page.clearErrors();
        assert.deepEqual(await page.errors(), []);
      } finally {
        await page.close();
        await site.close();
      }
    });

    test(`${engine}: a page run served with and without COOP/COEP`, async () => {
      const seen = {};
      for (const isolated of [false, true]) {
        const site = await watch(server.url, { headers: isolated ? ISOLATION_HEADERS : {} });
        const page = await Page.open(browser);
        try {
          await page.goto(site.url);
          seen[isolated] = await page.env();
        } finally {
          await page.close();
          await site.close();
        }
        assert.equal(seen[isolated].crossOriginIsolated, isolated, `${engine}: crossOriginIsolated with isolated=${isolated}`);
      }
      console.log(
        `${engine} ${browser.version}: plain page: crossOriginIsolated ${seen.false.crossOriginIsolated}, SharedArrayBuffer ${seen.false.sharedArrayBuffer}; ` +
          `COOP/COEP: crossOriginIsolated ${seen.true.crossOriginIsolated}, SharedArrayBuffer ${seen.true.sharedArrayBuffer}`,
      );
      // No engine offers SharedArrayBuffer to a page that is not cross-origin isolated.
      assert.equal(seen.false.sharedArrayBuffer, false);
    });
  });
}

// The three browser engines of the browser tests behind one interface:
//   const browser = await launch('firefox', { viewport })   // {name, version, newPage(), close()}
//   const tab = await browser.newPage()    // {goto(url), evaluate(fn, ...args), screenshot(path, {selector, fullPage}),
//                                          //  driverErrors: string[], close()}
// evaluate runs fn (a function, sent as its source; arguments and result as JSON) in the page
// and awaits the promise it returns. driverErrors are what the driver itself reports (console
// errors of the page and its workers, uncaught errors, failed requests); WebKit's driver reports
// none, so the harness also collects errors in the page (collector.js) for every engine.
//   Chromium: Debian's chromium through playwright-core (CDP).
//   Firefox: Debian's firefox-esr through puppeteer-core (WebDriver BiDi).
//   WebKit: WebKitGTK's MiniBrowser through WebKitWebDriver (classic WebDriver, webkit.mjs).
// BNWASM_BROWSERS=chromium,webkit limits the tests to some engines (default: all three).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWebKit } from './webkit.mjs';

export const ENGINE_NAMES = ['chromium', 'firefox', 'webkit'];
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
const EVALUATE_MS = 130_000;
const SCREENSHOT_MS = 120_000;

/** The engines to test: BNWASM_BROWSERS (comma-separated) or all three. */
export function engineNames() {
  const wanted = process.env.BNWASM_BROWSERS?.split(',').map((s) => s.trim()).filter(Boolean) ?? ENGINE_NAMES;
  const unknown = wanted.filter((name) => !ENGINE_NAMES.includes(name));
  if (unknown.length > 0) throw new Error(`BNWASM_BROWSERS: unknown engine ${unknown.join(', ')} (expected ${ENGINE_NAMES.join(', ')})`);
  return wanted;
}

/** `(fn)(...args)` as one expression: what CDP and BiDi evaluate, exempt from the page's CSP. */
const expression = (fn, args) => `(${fn})(...${JSON.stringify(args)})`;

/** Chromium's and Firefox's drivers report the same kinds of events; one listener set for both. */
function listen(page, errors, { onWorker }) {
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console.error: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  page.on('requestfailed', (request) => {
    const reason = typeof request.failure === 'function' ? request.failure()?.errorText : '';
    errors.push(`request failed: ${request.url()} ${reason ?? ''}`.trim());
  });
  page.on(onWorker, (worker) =>
    worker.on('console', (message) => {
      if (message.type() === 'error') errors.push(`worker console.error: ${message.text()}`);
    }),
  );
}

async function launchChromium({ viewport }) {
  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'bnwasm-chromium-'));
  // The flags this machine needs (TOOLCHAIN.md): root needs --no-sandbox; the rest keep it
  // from trying to reach hosts it cannot reach.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const version = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().replace(/^Chromium /, '').split(' ')[0];
  return {
    version,
    async newPage() {
      const page = await context.newPage();
      const driverErrors = [];
      listen(page, driverErrors, { onWorker: 'worker' });
      return {
        driverErrors,
        goto: (url) => page.goto(url, { timeout: 60_000 }),
        evaluate: (fn, ...args) => page.evaluate(expression(fn, args)),
        screenshot: ({ path, selector, fullPage }) => (selector ? page.locator(selector).screenshot({ path }) : page.screenshot({ path, fullPage })),
        close: () => page.close(),
      };
    },
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

async function launchFirefox({ viewport }) {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    defaultViewport: viewport ?? null,
    timeout: 60_000,
    protocolTimeout: EVALUATE_MS,
  });
  const version = (await browser.version()).replace(/^firefox\//, '');
  return {
    version,
    async newPage() {
      const page = await browser.newPage();
      const driverErrors = [];
      listen(page, driverErrors, { onWorker: 'workercreated' });
      return {
        driverErrors,
        goto: (url) => page.goto(url, { timeout: 60_000 }),
        evaluate: (fn, ...args) => page.evaluate(expression(fn, args)),
        async screenshot({ path, selector, fullPage }) {
          if (!selector) return page.screenshot({ path, fullPage });
          const element = await page.$(selector);
          return element.screenshot({ path });
        },
        close: () => page.close(),
      };
    },
    close: () => browser.close(),
  };
}

async function launchWebKit({ viewport }) {
  const session = await startWebKit({ viewport });
  const { call } = session;
  const png = (path, base64) => writeFileSync(path, Buffer.from(base64, 'base64'));
  let open = false;
  return {
    version: session.version,
    // One WebDriver session is one window: a page is that window, navigated.
    async newPage() {
      if (open) throw new Error('webkit: one page at a time (close the last one first)');
      open = true;
      return {
        driverErrors: [],
        goto: (url) => call('POST', '/url', { url }, 70_000),
        evaluate: (fn, ...args) => call('POST', '/execute/sync', { script: `return (${fn}).apply(null, arguments);`, args }, EVALUATE_MS),
        async screenshot({ path, selector }) {
          // Classic WebDriver captures the viewport (or one element), never the whole page.
          // MiniBrowser paints in software: a large page on a loaded machine took over 30 s.
          if (!selector) return png(path, await call('GET', '/screenshot', undefined, SCREENSHOT_MS));
          const element = await call('POST', '/element', { using: 'css selector', value: selector });
          return png(path, await call('GET', `/element/${Object.values(element)[0]}/screenshot`, undefined, SCREENSHOT_MS));
        },
        async close() {
          open = false;
          await call('POST', '/url', { url: 'about:blank' }).catch(() => {});
        },
      };
    },
    close: () => session.close(),
  };
}

const LAUNCHERS = { chromium: launchChromium, firefox: launchFirefox, webkit: launchWebKit };

/** Starts the engine `name`; a failure names the engine. */
export async function launch(name, { viewport } = {}) {
  try {
    return { name, ...(await LAUNCHERS[name]({ viewport })) };
  } catch (error) {
    throw new Error(`${name}: the browser did not start: ${error.message}`);
  }
}

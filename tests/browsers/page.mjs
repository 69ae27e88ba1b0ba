// One page in one engine, with what the browser tests ask of it, built on the engine interface's
// evaluate() only, so every engine does exactly the same thing: read text, attributes and
// values; click, choose an option, hand files to a file input (as a user's file chooser
// would: a change event with a FileList); wait for a condition; take a screenshot; and the
// errors seen in the page and by the driver. Every failure names the engine and the page.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Page {
  /** @param browser from engines.mjs launch(); tab from browser.newPage() */
  constructor(browser, tab) {
    this.engine = browser.name;
    this.tab = tab;
    this.url = 'about:blank';
    /** Errors of pages this tab has left: the collector's list goes with its page. */
    this.pastErrors = [];
  }

  static async open(browser) {
    return new Page(browser, await browser.newPage());
  }

  fail(what, error) {
    return new Error(`${this.engine}, ${this.url}: ${what}${error ? `: ${error.message.split('\n')[0]}` : ''}`);
  }

  async goto(url) {
    this.pastErrors.push(...(await this.pageErrors()));
    this.url = url;
    try {
      await this.tab.goto(url);
    } catch (error) {
      throw this.fail('page did not load', error);
    }
  }

  /** fn(...args) in the page (a function: its source is sent; args and result travel as JSON). */
  async evaluate(fn, ...args) {
    try {
      return await this.tab.evaluate(fn, ...args);
    } catch (error) {
      throw this.fail(`evaluate ${String(fn).slice(0, 80)}`, error);
    }
  }

  /** Polls fn(...args) in the page until it returns a truthy value (which it returns). */
  async waitFor(fn, args = [], { timeout = 30_000, interval = 100, what = String(fn).slice(0, 120) } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const value = await this.evaluate(fn, ...args);
      if (value) return value;
      if (Date.now() > deadline) {
        // What the page said meanwhile is usually why.
        const errors = await this.errors().catch(() => []);
        throw this.fail(`waited ${timeout / 1000} s for ${what}${errors.length > 0 ? `; errors: ${errors.join(' | ').slice(0, 600)}` : ''}`);
      }
      await sleep(interval);
    }
  }

  waitForSelector(selector, options) {
    return this.waitFor((s) => document.querySelector(s) !== null, [selector], { what: selector, ...options });
  }

  /**
   * fn(element, ...args) on the first match of selector; a missing element is an error. The call
   * is composed here and sent as one function: the page compiles nothing (no eval under CSP).
   */
  async evaluateOn(selector, fn, args) {
    const found = await this.tab
      .evaluate(new Function('s', 'rest', `const e = document.querySelector(s); return e ? { value: (${fn})(e, ...rest) } : null;`), selector, args)
      .catch((error) => {
        throw this.fail(`on ${selector}: ${String(fn).slice(0, 80)}`, error);
      });
    if (!found) throw this.fail(`no element ${selector}`);
    return found.value;
  }

  text(selector) {
    return this.evaluateOn(selector, (e) => e.textContent, []);
  }

  value(selector) {
    return this.evaluateOn(selector, (e) => e.value, []);
  }

  attribute(selector, name) {
    return this.evaluateOn(selector, (e, n) => e.getAttribute(n), [name]);
  }

  isDisabled(selector) {
    return this.evaluateOn(selector, (e) => e.disabled === true, []);
  }

  isVisible(selector) {
    return this.evaluateOn(selector, (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden', []);
  }

  /** fn(list of matches, ...args) in the page. */
  async all(selector, fn, ...args) {
    return this.tab.evaluate(new Function('s', 'rest', `return (${fn})(Array.from(document.querySelectorAll(s)), ...rest);`), selector, args).catch((error) => {
      throw this.fail(`on all ${selector}: ${String(fn).slice(0, 80)}`, error);
    });
  }

  count(selector) {
    return this.all(selector, (list) => list.length);
  }

  /** Clicks the index-th match (scrolled into view); a disabled or missing element is an error. */
  async click(selector, index = 0) {
    const outcome = await this.all(
      selector,
      (list, k) => {
        const e = list[k];
        if (!e) return `no element (${list.length} matches)`;
        if (e.disabled) return 'the element is disabled';
        e.scrollIntoView({ block: 'center' });
        e.click();
        return 'clicked';
      },
      index,
    );
    if (outcome !== 'clicked') throw this.fail(`click ${selector}[${index}]: ${outcome}`);
  }

  /** Chooses the option with this value, as a user does: input and change events. */
  async select(selector, value) {
    const outcome = await this.evaluateOn(
      selector,
      (e, v) => {
        if (![...e.options].some((o) => o.value === v)) return `no option ${v}`;
        e.value = v;
        e.dispatchEvent(new Event('input', { bubbles: true }));
        e.dispatchEvent(new Event('change', { bubbles: true }));
        return 'selected';
      },
      [value],
    );
    if (outcome !== 'selected') throw this.fail(`select ${selector}: ${outcome}`);
  }

  /** Gives a file input these files (their bytes and names) and fires change, as a file chooser does. */
  async setFiles(selector, paths) {
    const files = paths.map((p) => ({ name: basename(p), base64: readFileSync(p).toString('base64') }));
    const outcome = await this.evaluateOn(
      selector,
      (input, list) => {
        const transfer = new DataTransfer();
        for (const f of list) {
          const bytes = Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0));
          transfer.items.add(new File([bytes], f.name));
        }
        input.files = transfer.files;
        input.dispatchEvent(new Event('input', { bubbles: true }));
        input.dispatchEvent(new Event('change', { bubbles: true }));
        return input.files.length;
      },
      [files],
    );
    if (outcome !== files.length) throw this.fail(`set files of ${selector}: ${outcome} of ${files.length} taken`);
  }

  /**
   * Saves a screenshot, an artifact for people to look at, not a check: one the driver does not
   * deliver (WebKitGTK's WebDriver, painting in software on a loaded machine, has taken over 120 s)
   * is reported in the log and the test goes on. Whether the page still answers is checked by
   * what follows, every call bounded; whether it keeps drawing, by the frame-gap checks.
   */
  async screenshot(options) {
    try {
      await this.tab.screenshot(options);
      return true;
    } catch (error) {
      console.log(`# ${this.fail(`screenshot ${options.selector ?? ''} not saved (${options.path})`, error).message}`);
      return false;
    }
  }

  /** The collector's errors of the current page (collector.js). */
  async pageErrors() {
    if (this.url === 'about:blank') return [];
    const errors = await this.tab.evaluate(() => window.__bnwasmHarness?.errors ?? ['the error collector did not run in this page']).catch((error) => [
      `could not read the page's errors: ${error.message.split('\n')[0]}`,
    ]);
    return errors.map((e) => `page: ${e}`);
  }

  /** Every error so far: the driver's (where it reports any) and the pages' own. */
  async errors() {
    return [...this.tab.driverErrors, ...this.pastErrors, ...(await this.pageErrors())];
  }

  /** Forgets the errors so far (a test that asserted none starts a new count). */
  async clearErrors() {
    this.tab.driverErrors.length = 0;
    this.pastErrors.length = 0;
    await this.tab.evaluate(() => window.__bnwasmHarness?.errors.splice(0)).catch(() => {});
  }

  /** crossOriginIsolated and whether SharedArrayBuffer exists, as the page sees them. */
  env() {
    return this.evaluate(() => window.__bnwasmHarness.env());
  }

  close() {
    return this.tab.close();
  }
}

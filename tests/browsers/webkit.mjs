// WebKitGTK through classic WebDriver: Debian's WebKitWebDriver drives MiniBrowser, which has no
// headless mode, so both run in a virtual X display (Xvfb). The client is a few calls of the
// W3C WebDriver protocol over fetch. Every call is bounded: without a display `POST /session`
// hangs rather than failing, and a wedged page must fail a test, not stall it.
// Classic WebDriver reports no console, network or worker events: the harness collects errors
// inside the page (collector.js) and requests in its proxy's log (proxy.mjs).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';

const MINIBROWSER = process.env.MINIBROWSER ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const CALL_MS = 30_000;
const SESSION_MS = 60_000;

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** Starts a child in its own process group, so stop() ends it and everything it started. */
function start(command, args, options) {
  const child = spawn(command, args, { ...options, detached: true });
  let output = '';
  for (const stream of [child.stdout, child.stderr]) stream?.on('data', (d) => (output = (output + d).slice(-4000)));
  const stop = () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  };
  process.once('exit', stop);
  return { child, stop, output: () => output };
}

/** Xvfb on the first free display (-displayfd writes the number it took). */
async function startDisplay() {
  const xvfb = start('Xvfb', ['-displayfd', '3', '-screen', '0', '1600x1200x24', '-nolisten', 'tcp'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  const display = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Xvfb did not report a display within 20 s: ${xvfb.output()}`)), 20_000);
    xvfb.child.once('error', (error) => reject(new Error(`Xvfb: ${error.message} (apt-get install xvfb xauth)`)));
    xvfb.child.once('exit', (code) => reject(new Error(`Xvfb exited with ${code}: ${xvfb.output()}`)));
    xvfb.child.stdio[3].once('data', (d) => {
      clearTimeout(timer);
      resolve(`:${String(d).trim()}`);
    });
  });
  return { display, stop: xvfb.stop };
}

/** A WebDriver endpoint: call(method, path, body) returns the reply's `value` or throws its error. */
function client(base) {
  return async function call(method, path, body, ms = CALL_MS) {
    let reply;
    try {
      reply = await fetch(`${base}${path}`, {
        method,
        headers: { 'Content-Type': 'application/json; charset=utf-8' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(ms),
      });
    } catch (error) {
      throw new Error(`WebDriver ${method} ${path}: ${error.name === 'TimeoutError' ? `no answer within ${ms / 1000} s` : error.message}`);
    }
    const { value } = await reply.json();
    if (!reply.ok) throw new Error(`WebDriver ${method} ${path}: ${value?.error}: ${value?.message}`);
    return value;
  };
}

/** MiniBrowser in a WebDriver session: {version, call(method, path, body, ms), close()}. */
export async function startWebKit({ viewport }) {
  if (!existsSync(MINIBROWSER)) throw new Error(`no MiniBrowser at ${MINIBROWSER} (apt-get install webkit2gtk-driver; MINIBROWSER=path)`);
  const x = await startDisplay();
  const port = await freePort();
  const driver = start('WebKitWebDriver', [`--port=${port}`, '--host=127.0.0.1'], {
    // No GPU here: accelerated compositing would composite every frame in Mesa's software GL,
    // which takes CPU from the page's workers on a 2-core machine (the demo's CNN trained slower
    // and the page stalled longer with it); WebKit's non-composited path draws the same page.
    env: { WEBKIT_DISABLE_COMPOSITING_MODE: '1', ...process.env, DISPLAY: x.display },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = () => {
    driver.stop();
    x.stop();
  };
  try {
    const driverFailed = new Promise((_, reject) => {
      driver.child.once('error', (error) => reject(new Error(`WebKitWebDriver: ${error.message} (apt-get install webkit2gtk-driver)`)));
    });
    const server = client(`http://127.0.0.1:${port}`);
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await Promise.race([server('GET', '/status', undefined, 1000), driverFailed]);
        break;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`WebKitWebDriver did not answer within 20 s: ${error.message}\n${driver.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const session = await server(
      'POST',
      '/session',
      {
        capabilities: {
          alwaysMatch: {
            browserName: 'MiniBrowser',
            'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] },
          },
        },
      },
      SESSION_MS,
    );
    const call = (method, path, body, ms) => server(method, `/session/${session.sessionId}${path}`, body, ms);
    await call('POST', '/timeouts', { script: 120_000, pageLoad: 60_000 });
    if (viewport) await call('POST', '/window/rect', { width: viewport.width, height: viewport.height });
    return {
      version: session.capabilities.browserVersion,
      call,
      async close() {
        await server('DELETE', `/session/${session.sessionId}`, undefined, 10_000).catch(() => {});
        stop();
      },
    };
  } catch (error) {
    stop();
    throw error;
  }
}

// Every page of the browser tests is opened through this proxy, whatever serves it (a static
// server, scripts/serve.mjs, a Vite dev server). It logs each request with its answer, the
// same way in every engine (classic WebDriver reports no network events), injects the error
// collector (collector.js) into HTML pages, and adds the response headers a page run asks for
// (cross-origin isolation: COOP/COEP). WebSocket upgrades (Vite's HMR) pass through.
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { connect } from 'node:net';

const COLLECTOR_PATH = '/__bnwasm-harness/collector.js';
const COLLECTOR = readFileSync(new URL('./collector.js', import.meta.url));
const TAG = `<script src="${COLLECTOR_PATH}"></script>`;

/** The headers that make a page cross-origin isolated (SharedArrayBuffer, wasm threads). */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/** The collector as the first script: after <head>, else after the doctype, else first. */
function inject(html) {
  for (const re of [/<head[^>]*>/i, /<!doctype[^>]*>/i]) {
    const m = re.exec(html);
    if (m) return html.slice(0, m.index + m[0].length) + TAG + html.slice(m.index + m[0].length);
  }
  return TAG + html;
}

/**
 * Serves `target` (an http origin) on a free port of 127.0.0.1.
 * @returns {Promise<{url: string, log: {path: string, url: string, status: number, type: string, dest: string}[], close(): Promise<void>}>}
 *   log: every request answered, in order; dest is the request's Sec-Fetch-Dest ('worker' for a worker script).
 */
export async function watch(target, { headers = {} } = {}) {
  const upstream = new URL(target);
  const log = [];
  let origin;
  const server = createServer((req, res) => {
    const path = req.url;
    const dest = req.headers['sec-fetch-dest'] ?? '';
    const record = (status, type) => log.push({ path: new URL(path, origin).pathname, url: new URL(path, origin).href, status, type, dest });
    if (new URL(path, origin).pathname === COLLECTOR_PATH) {
      record(200, 'text/javascript');
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
      return res.end(COLLECTOR);
    }
    // Plain bodies: the HTML is rewritten.
    const { 'accept-encoding': _, ...forwarded } = req.headers;
    const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path, headers: { ...forwarded, host: upstream.host } }, (answer) => {
      const type = answer.headers['content-type'] ?? '';
      record(answer.statusCode, type);
      const responseHeaders = { ...answer.headers, ...headers };
      if (!type.startsWith('text/html') || req.method === 'HEAD') {
        res.writeHead(answer.statusCode, responseHeaders);
        return answer.pipe(res);
      }
      const chunks = [];
      answer.on('data', (c) => chunks.push(c));
      answer.on('end', () => {
        const body = Buffer.from(inject(Buffer.concat(chunks).toString('utf8')));
        delete responseHeaders['transfer-encoding'];
        res.writeHead(answer.statusCode, { ...responseHeaders, 'content-length': body.length });
        res.end(body);
      });
    });
    out.on('error', (error) => {
      record(502, error.message);
      if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end(`proxy: ${error.message}`);
    });
    req.pipe(out);
  });
  server.on('upgrade', (req, socket, head) => {
    const peer = connect(Number(upstream.port), upstream.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      peer.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) peer.write(head);
      socket.pipe(peer).pipe(socket);
    });
    peer.on('error', () => socket.destroy());
    socket.on('error', () => peer.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${server.address().port}`;
  return {
    url: `${origin}/`,
    log,
    close: () =>
      new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      }),
  };
}

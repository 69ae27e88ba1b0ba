// A static file server for built consumer apps: correct MIME types, 404 for what is missing
// (no single-page fallback, so a wrong asset URL shows as a failed request), optional extra
// headers (the strict Content-Security-Policy).
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.map': 'application/json; charset=utf-8',
};

/** Serves `root` on 127.0.0.1 (a free port). @returns {Promise<{url: string, close: () => Promise<void>}>} */
export async function serveStatic(root, headers = {}) {
  const base = root.endsWith(sep) ? root : root + sep;
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url, 'http://localhost').pathname);
    const file = normalize(join(base, path.endsWith('/') ? `${path}index.html` : path));
    let stat = null;
    try {
      if (file.startsWith(base)) stat = statSync(file);
    } catch {}
    if (!stat?.isFile()) {
      response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
      return response.end(`not found: ${path}`);
    }
    response.writeHead(200, {
      'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
      'Content-Length': stat.size,
      'Cache-Control': 'no-store',
      ...headers,
    });
    createReadStream(file).pipe(response);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    // closeAllConnections: Chromium keeps sockets open (keep-alive, preconnects that never send a
    // request), and close() alone waits for them until the server's request timeout (minutes).
    close: () =>
      new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      }),
  };
}

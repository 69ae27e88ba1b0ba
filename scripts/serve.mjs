#!/usr/bin/env node
// A small static server for the demo: serves web/ on localhost with the headers that make
// the page cross-origin isolated (COOP/COEP), so it can share its training data with the
// worker in a SharedArrayBuffer, and with the right MIME types for .mjs and .wasm.
//   node scripts/serve.mjs [--port N]      (default 8080; another free port if it is taken)
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const WEB_ROOT = fileURLToPath(new URL('../web/', import.meta.url));

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.ts': 'text/plain; charset=utf-8',
};

const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

function handle(root, isolation, request, response) {
  const send = (status, text) => {
    response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...isolation });
    response.end(text);
  };
  if (request.method !== 'GET' && request.method !== 'HEAD') return send(405, 'method not allowed');
  let path;
  try {
    path = decodeURIComponent(new URL(request.url, 'http://localhost').pathname);
  } catch {
    return send(400, 'bad request');
  }
  if (path === '/') {
    response.writeHead(302, { Location: '/demo/', ...isolation });
    return response.end();
  }
  const file = normalize(join(root, path.endsWith('/') ? `${path}index.html` : path));
  if (!file.startsWith(root.endsWith(sep) ? root : root + sep)) return send(403, 'forbidden');
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return send(404, `not found: ${path}`);
  }
  if (stat.isDirectory()) {
    response.writeHead(302, { Location: `${path}/`, ...isolation });
    return response.end();
  }
  response.writeHead(200, {
    'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
    'Content-Length': stat.size,
    'Cache-Control': 'no-cache',
    ...isolation,
  });
  if (request.method === 'HEAD') return response.end();
  createReadStream(file).pipe(response);
}

/**
 * Starts the server. Port 0 picks a free port; a taken port falls back to a free one.
 * isolated = false leaves out the COOP/COEP headers, like a plain static host (tests use it).
 * @returns {Promise<{server: import('node:http').Server, url: string}>} url of the demo page
 */
export function serve({ port = 8080, host = '127.0.0.1', root = WEB_ROOT, isolated = true } = {}) {
  const isolation = isolated ? ISOLATION : {};
  const listen = (p) =>
    new Promise((resolve, reject) => {
      const server = createServer((request, response) => handle(root, isolation, request, response));
      server.once('error', reject);
      server.listen(p, host, () => resolve(server));
    });
  return listen(port)
    .catch((error) => {
      if (error.code !== 'EADDRINUSE' || port === 0) throw error;
      return listen(0);
    })
    .then((server) => ({ server, url: `http://${host === '127.0.0.1' ? 'localhost' : host}:${server.address().port}/demo/` }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: process.env.PORT ?? '8080' } } });
  const { url } = await serve({ port: Number(values.port) });
  console.log(`bnwasm demo: ${url}`);
}

// Browser mode: the renderer served on 127.0.0.1 with the StudioApi over HTTP. Used where Electron cannot run
// (servers, CI, end-to-end tests) and by `npm start` when the Electron binary is absent.
//
// Security model: the server listens on the loopback interface only, and every request must carry a random
// per-run token, so other local users, other web pages (CSRF) and DNS-rebinding sites cannot reach the API:
// - API calls send it in the `x-delst-token` header (a cookie alone is not enough for the API);
// - opening `/?token=...` sets an HttpOnly, SameSite=Strict cookie, which the page's own asset and tile
//   requests then carry (OpenSeadragon loads tiles as plain images and cannot add headers);
// - the Host header must name this server (127.0.0.1:port or localhost:port), and so must an Origin header;
// - API calls from another site (Sec-Fetch-Site) are refused even with the token;
// - every API call is checked (method, argument count, types and size) before the core sees it: validateApiCall;
// - static files come only from the renderer folder and tiles only from the slide cache, symlinks resolved.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { StudioApi, StudioApiMethod } from '../core/api/api.js';
import { ApiCallError, apiSizeLimit, isApiMethod, validateApiCall } from '../electron/security.js';

/** The part of the slide cache the tile route needs (the real one is `Studio.slides`). */
export interface TileFiles {
  /** The cache folder: a tile file must really (symlinks resolved) lie inside it. */
  readonly dir: string;
  /** The file holding one DeepZoom tile, or null when there is none. Rejects keys that would leave the cache. */
  tileFile(key: string, level: number, col: number, row: number): string | null | Promise<string | null>;
}

export interface BrowserServerOptions {
  studio: StudioApi & { readonly slides: TileFiles };
  /** 0 (the default) picks any free port. */
  port?: number;
  /** The built renderer (dist/renderer). */
  rendererDir: string;
  /** Fixed token (tests); a random one otherwise. */
  token?: string;
  /** Where unexpected errors (not DataError) are reported; console.error by default. */
  onError?: (context: string, error: unknown) => void;
}

export interface BrowserServer {
  /** http://127.0.0.1:PORT/?token=... : opens the app and hands the browser its cookie. */
  readonly url: string;
  readonly token: string;
  readonly port: number;
  close(): Promise<void>;
}

export const TOKEN_HEADER = 'x-delst-token';

/** The largest request body the server takes for an API method (the same limit as over Electron's IPC). */
export function bodyLimit(method: StudioApiMethod): number {
  return apiSizeLimit(method);
}

/**
 * OpenSeadragon 6 injects one inline <style> (`@media (hover: none) { .openseadragon-canvas:focus ... }`): allowed
 * by its hash instead of 'unsafe-inline'. If OSD changes that text, the e2e test reports the CSP violation.
 */
export const OSD_INLINE_STYLE_HASH = "'sha256-9xTiqzfwFaL2SGb1rmr8gysEwVVjIvqWAgmZgqFqpEE='";

/** The renderer's Content-Security-Policy, for both shells; Electron adds its tile origin. */
export function contentSecurityPolicy(tileOrigin?: string): string {
  const tiles = tileOrigin ? ` ${tileOrigin}` : '';
  return [
    "default-src 'self'",
    "script-src 'self'",
    `style-src 'self' ${OSD_INLINE_STYLE_HASH}`,
    `img-src 'self'${tiles} blob: data:`,
    `connect-src 'self'${tiles}`,
    "font-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export const CONTENT_SECURITY_POLICY = contentSecurityPolicy();

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

/** The content type served for a file, by extension. */
export function contentType(file: string): string {
  return CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** `<key>/<level>/<col>_<row>.<format>` after a tile route's prefix. */
export const TILE_PATH = /^([A-Za-z0-9_-]{1,128})\/(\d{1,3})\/(\d{1,7})_(\d{1,7})\.(jpeg|png)$/;

/** Whether a tile file from the cache has the extension a request asked for. */
export function tileFormatMatches(file: string, format: string): boolean {
  const ext = extname(file).toLowerCase();
  return format === 'jpeg' ? ext === '.jpeg' || ext === '.jpg' : format === 'png' && ext === '.png';
}

/** An error to send as `{error}` with a status. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startBrowserServer(options: BrowserServerOptions): Promise<BrowserServer> {
  const { studio } = options;
  const onError = options.onError ?? ((context: string, error: unknown) => console.error(`${context}:`, error));
  const token = options.token ?? randomBytes(24).toString('base64url');
  const tokenBytes = Buffer.from(token, 'utf8');
  const rendererDir = await realpath(resolve(options.rendererDir));
  let port = 0;
  // Cookies are shared across ports of one host: name ours by port so two instances do not clash.
  const cookieName = () => `delst_token_${port}`;

  const tokenMatches = (candidate: string | undefined | null): boolean => {
    if (!candidate) return false;
    const given = Buffer.from(candidate, 'utf8');
    // timingSafeEqual needs equal lengths; compare against ourselves to spend the same time, then fail.
    if (given.length !== tokenBytes.length) {
      timingSafeEqual(tokenBytes, tokenBytes);
      return false;
    }
    return timingSafeEqual(given, tokenBytes);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      onError(`delst browser server ${req.method} ${req.url?.split('?')[0]}`, error);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // DNS rebinding: a page of another site that resolves its name to 127.0.0.1 sends its own name as the Host.
    const host = req.headers.host;
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) {
      return sendJson(res, 403, { error: 'forbidden: wrong Host header' });
    }
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://127.0.0.1:${port}` && origin !== `http://localhost:${port}`) {
      return sendJson(res, 403, { error: 'forbidden: wrong Origin header' });
    }
    const rawUrl = req.url ?? '/';
    if (!rawUrl.startsWith('/')) return sendJson(res, 400, { error: 'bad request' });
    const url = new URL(rawUrl, `http://127.0.0.1:${port}`);
    const pathname = rawUrl.split('?')[0];

    const headerToken = req.headers[TOKEN_HEADER];
    const fromHeader = tokenMatches(typeof headerToken === 'string' ? headerToken : undefined);
    const fromCookie = tokenMatches(readCookie(req.headers.cookie, cookieName()));
    const fromQuery = pathname === '/' && tokenMatches(url.searchParams.get('token'));

    if (pathname.startsWith('/api/')) {
      // The API needs the header: a cookie alone could be replayed by a form on another site.
      if (!fromHeader) return sendJson(res, 403, { error: 'forbidden: missing or wrong token' });
      const site = req.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin') {
        return sendJson(res, 403, { error: 'forbidden: API calls come from the app only' });
      }
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'use POST' }, { allow: 'POST' });
      return handleApi(req, res, pathname.slice('/api/'.length));
    }
    if (!fromHeader && !fromCookie && !fromQuery) {
      return sendJson(res, 403, { error: 'forbidden: open the address DELST Studio printed (it carries a token)' });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendJson(res, 405, { error: 'use GET' }, { allow: 'GET, HEAD' });
    }
    if (pathname.startsWith('/tiles/')) return handleTile(req, res, pathname);

    const extra: Record<string, string> = {};
    if (fromQuery) {
      extra['set-cookie'] = `${cookieName()}=${token}; HttpOnly; SameSite=Strict; Path=/`;
    }
    return handleStatic(req, res, pathname, extra);
  }

  async function handleApi(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    if (!isApiMethod(name)) return sendJson(res, 404, { error: `unknown API method: ${name.slice(0, 64)}` });
    const bodyType = req.headers['content-type'] ?? '';
    if (!/^application\/json\b/i.test(bodyType)) {
      return sendJson(res, 415, { error: 'expected a JSON body (content-type: application/json)' });
    }
    let args: unknown;
    try {
      args = JSON.parse(await readBody(req, bodyLimit(name)));
    } catch (error) {
      if (error instanceof HttpError) return sendJson(res, error.status, { error: `${name}: ${error.message}` });
      return sendJson(res, 400, { error: `${name}: the body is not valid JSON` });
    }
    try {
      validateApiCall(name, args);
    } catch (error) {
      if (error instanceof ApiCallError) return sendJson(res, error.status, { error: error.message });
      throw error;
    }
    const method = studio[name] as (...a: unknown[]) => Promise<unknown>;
    try {
      const result = await method.apply(studio, args as unknown[]); // an array: validateApiCall checked it
      sendJson(res, 200, result ?? null);
    } catch (error) {
      // DataError messages name the file and the problem: shown to users as they are. Never a stack.
      const message = error instanceof Error ? error.message : String(error);
      if (!(error instanceof Error && error.name === 'DataError')) onError(`delst api ${name}`, error);
      sendJson(res, 400, { error: message });
    }
  }

  async function handleTile(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    const match = TILE_PATH.exec(pathname.slice('/tiles/'.length));
    if (!match) return sendJson(res, 404, { error: 'not found' });
    const [, key, level, col, row, format] = match;
    let file: string | null;
    try {
      file = await studio.slides.tileFile(key, Number(level), Number(col), Number(row));
    } catch {
      file = null;
    }
    // The cache decides the file; its extension must be the one asked for, and it must really lie in the cache.
    const real = file && tileFormatMatches(file, format) ? await realFileInside(studio.slides.dir, file) : null;
    if (!real) return sendJson(res, 404, { error: 'not found' });
    return sendFile(req, res, real, { 'cache-control': 'private, max-age=86400' });
  }

  async function handleStatic(
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
    extra: Record<string, string>,
  ): Promise<void> {
    const file = await confinedFile(rendererDir, pathname === '/' ? '/index.html' : pathname);
    if (!file) return sendJson(res, 404, { error: 'not found' });
    const cache = file.endsWith('.html') ? 'no-store' : 'private, max-age=3600';
    return sendFile(req, res, file, { ...extra, 'cache-control': cache });
  }

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: options.port ?? 0 }, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/?token=${encodeURIComponent(token)}`,
    token,
    port,
    close: () =>
      new Promise<void>((resolveClose, reject) => {
        server.close((error) => (error ? reject(error) : resolveClose()));
        server.closeAllConnections();
      }),
  };
}

/**
 * The file a URL path names inside `root`, or null: no `..`, no NUL, no backslashes, no encoded separators,
 * no dotfiles, and the real path (symlinks resolved) must stay inside `root`.
 */
export async function confinedFile(root: string, urlPath: string): Promise<string | null> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (!decoded.startsWith('/') || /[\0\\]/.test(decoded)) return null;
  const segments = decoded.split('/').slice(1);
  if (segments.some((s) => s === '' || s.startsWith('.'))) return null;
  const candidate = resolve(root, ...segments);
  if (!isInside(root, candidate)) return null;
  return realFileInside(root, candidate);
}

/**
 * The real path of `file` when it is a regular file really inside `root` (both with symlinks resolved), else null:
 * a symlink planted in a served folder (renderer, slide cache) cannot hand out a file from elsewhere.
 */
export async function realFileInside(root: string, file: string): Promise<string | null> {
  try {
    const [realRoot, real] = await Promise.all([realpath(root), realpath(file)]);
    if (!isInside(realRoot, real)) return null;
    return (await stat(real)).isFile() ? real : null;
  } catch {
    return null;
  }
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is read and dropped, so the client still gets its 413.
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > limit) reject(new HttpError(413, 'request body too large'));
      else resolveBody(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    ...extra,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

async function sendFile(
  req: IncomingMessage,
  res: ServerResponse,
  file: string,
  extra: Record<string, string>,
): Promise<void> {
  const info = await stat(file);
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    ...extra,
    'content-type': contentType(file),
    'content-length': info.size,
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  await new Promise<void>((done, reject) => {
    const stream = createReadStream(file);
    stream.on('error', reject);
    res.on('close', () => {
      stream.destroy();
      done();
    });
    stream.pipe(res);
  });
}

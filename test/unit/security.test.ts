// Every path and request that crosses the API, attacked through the real browser-mode server on 127.0.0.1 with the
// real core (the demo section, a temporary project and slide cache): traversal (raw, encoded, backslashes), absolute
// paths outside the project, symlinks out of the slide cache and the renderer folder, oversized and malformed
// requests, wrong argument types, unknown methods, a missing or wrong token, a wrong Host or Origin, a WebSocket
// upgrade. Each is refused with a status and a message, a secret file outside never shows in any reply, and no file
// is created or changed.

import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SlideInfo } from '../../core/api/api.js';
import { Studio } from '../../core/api/studio.js';
import { demoPath } from '../../core/resources.js';
import { startBrowserServer, type BrowserServer } from '../../server/browser-server.js';
import { rawRequest, type RawOptions, type Reply } from './support/http.js';

const demo = demoPath();
const skipReason = existsSync(demo) ? null : `no demo section at ${demo} (run npm run make-demo)`;
if (skipReason) console.log(`security tests skipped: ${skipReason}`);

const TOKEN = 'security-test-token-0123456789abcdef';
/** What the secret files hold: must never appear in a reply. */
const SECRET = `TOP-SECRET-${randomBytes(8).toString('hex')}`;

describe.skipIf(skipReason !== null)('security of the browser server and the API paths', () => {
  let scratch: string;
  let project: string;
  let outside: string;
  let cache: string;
  let studio: Studio;
  let server: BrowserServer;
  let sectionId: string;
  let slide: SlideInfo;
  const replies: Reply[] = [];

  /** A raw HTTP request to the server, its reply kept (no reply may show the secret). */
  async function raw(path: string, options?: RawOptions): Promise<Reply> {
    const reply = await rawRequest(server.port, path, options);
    replies.push(reply);
    return reply;
  }

  const json = { 'content-type': 'application/json', 'x-delst-token': TOKEN };
  const api = (method: string, args: unknown, headers: Record<string, string> = json) =>
    raw(`/api/${method}`, { method: 'POST', headers, body: JSON.stringify(args) });
  const cookie = () => ({ cookie: `delst_token_${server.port}=${TOKEN}` });
  const errorOf = (reply: Reply) => (JSON.parse(reply.body) as { error: string }).error;

  /** Every file under a folder (relative paths), links included, without following them. */
  function tree(dir: string): string[] {
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => !e.isDirectory())
      .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
      .sort();
  }

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'delst-security-'));
    project = join(scratch, 'project');
    cache = join(scratch, 'cache');
    outside = join(scratch, 'outside');
    mkdirSync(join(outside, 'slide_files', '0'), { recursive: true });
    writeFileSync(join(outside, 'secret.txt'), SECRET);
    writeFileSync(join(outside, 'secret.jpeg'), SECRET);
    writeFileSync(join(outside, 'slide_files', '0', '0_0.jpeg'), SECRET);
    writeFileSync(join(outside, 'victim.csv'), SECRET);
    writeFileSync(join(outside, 'victim.geojson'), SECRET);
    const renderer = join(scratch, 'renderer');
    mkdirSync(join(renderer, 'assets'), { recursive: true });
    writeFileSync(join(renderer, 'index.html'), '<!doctype html><title>DELST</title>');
    symlinkSync(join(outside, 'secret.txt'), join(renderer, 'assets', 'secret.js'));
    symlinkSync(outside, join(renderer, 'linked'));

    studio = new Studio({ cacheDir: cache, projectDir: project });
    [{ id: sectionId }] = (await studio.openPath(demo)).opened;
    slide = (await studio.getSlide(sectionId))!;
    // Links planted in the slide cache, pointing out of it: a tile, and a whole pyramid folder.
    const top = readdirSync(join(cache, slide.key, 'slide_files'))
      .map(Number)
      .sort((a, b) => b - a)[0];
    symlinkSync(join(outside, 'secret.jpeg'), join(cache, slide.key, 'slide_files', String(top), '999_999.jpeg'));
    symlinkSync(outside, join(cache, 'f'.repeat(64)));
    server = await startBrowserServer({ studio, rendererDir: renderer, token: TOKEN, onError: () => undefined });
  });

  afterAll(async () => {
    await server?.close();
    await studio?.shutdown();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('serves a real tile and page with the token (the control for the refusals below)', async () => {
    const tile = await raw(`/tiles/${slide.key}/0/0_0.jpeg`, { headers: cookie() });
    expect(tile.status).toBe(200);
    expect(tile.headers['content-type']).toBe('image/jpeg');
    expect((await raw('/', { headers: cookie() })).status).toBe(200);
    expect((await api('listSections', [])).status).toBe(200);
  });

  it('refuses a missing or wrong token in the header, the cookie and the query', async () => {
    const wrong = TOKEN.replace(/.$/, 'X');
    const before = (await studio.listSections()).length;
    const attempts: [string, Promise<Reply>][] = [
      ['no token', api('openPath', [demo], { 'content-type': 'application/json' })],
      ['wrong header', api('openPath', [demo], { ...json, 'x-delst-token': wrong })],
      ['empty header', api('openPath', [demo], { ...json, 'x-delst-token': '' })],
      ['cookie only', api('openPath', [demo], { 'content-type': 'application/json', ...cookie() })],
      ['query only', raw(`/api/openPath?token=${TOKEN}`, { method: 'POST', body: JSON.stringify([demo]) })],
      ['page, wrong query', raw(`/?token=${wrong}`)],
      ['page, wrong cookie', raw('/', { headers: { cookie: `delst_token_${server.port}=${wrong}` } })],
      ['tile, no token', raw(`/tiles/${slide.key}/0/0_0.jpeg`)],
      ['tile, query token', raw(`/tiles/${slide.key}/0/0_0.jpeg?token=${TOKEN}`)],
      ['asset, other port cookie', raw('/index.html', { headers: { cookie: `delst_token_1=${TOKEN}` } })],
    ];
    for (const [what, attempt] of attempts) {
      const reply = await attempt;
      expect(reply.status, what).toBe(403);
      expect(errorOf(reply), what).toMatch(/^forbidden/);
    }
    expect(errorOf(await api('listSections', [], { ...json, 'x-delst-token': wrong }))).toBe(
      'forbidden: missing or wrong token',
    );
    expect((await studio.listSections()).length).toBe(before);
  });

  it('refuses a wrong Host or Origin (DNS rebinding, other sites), even with the token', async () => {
    const port = server.port;
    for (const host of [`evil.example:${port}`, `127.0.0.1:${port + 1}`, '127.0.0.1', `[::1]:${port}`, 'localhost']) {
      const reply = await api('listSections', [], { ...json, host });
      expect(reply.status, host).toBe(403);
      expect(errorOf(reply)).toBe('forbidden: wrong Host header');
    }
    for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:${port + 1}`, `https://127.0.0.1:${port}`]) {
      const reply = await api('listSections', [], { ...json, origin });
      expect(reply.status, origin).toBe(403);
      expect(errorOf(reply)).toBe('forbidden: wrong Origin header');
      expect((await raw('/', { headers: { ...cookie(), origin } })).status, origin).toBe(403);
    }
    const site = await api('listSections', [], { ...json, 'sec-fetch-site': 'cross-site' });
    expect(site.status).toBe(403);
    expect(errorOf(site)).toBe('forbidden: API calls come from the app only');
    expect((await api('listSections', [], { ...json, 'sec-fetch-site': 'same-site' })).status).toBe(403);
    // What the app itself sends passes.
    const own = {
      ...json,
      origin: `http://localhost:${port}`,
      host: `localhost:${port}`,
      'sec-fetch-site': 'same-origin',
    };
    expect((await api('listSections', [], own)).status).toBe(200);
  });

  it('refuses a WebSocket upgrade (there is no WebSocket endpoint), with or without the token', async () => {
    for (const headers of [{}, { 'x-delst-token': TOKEN }]) {
      const status = await new Promise<number>((resolve) => {
        const req = request({
          host: '127.0.0.1',
          port: server.port,
          path: '/api/listSections',
          headers: {
            ...headers,
            host: `127.0.0.1:${server.port}`,
            connection: 'Upgrade',
            upgrade: 'websocket',
            'sec-websocket-version': '13',
            'sec-websocket-key': randomBytes(16).toString('base64'),
          },
        });
        req.on('upgrade', (_res, socket) => {
          socket.destroy();
          resolve(101);
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', () => resolve(-1));
        req.end();
      });
      expect(status).not.toBe(101);
    }
  });

  it('refuses unknown methods, malformed JSON, wrong argument types and counts, and oversized bodies', async () => {
    const classes = await studio.listClasses();
    const cases: [string, Promise<Reply>, number, RegExp][] = [
      ['unknown', api('readFile', ['/etc/passwd']), 404, /^unknown API method: readFile$/],
      ['inherited', api('constructor', []), 404, /^unknown API method/],
      ['not in the API', api('addSection', [{}]), 404, /^unknown API method/],
      ['bad JSON', raw('/api/createClass', { method: 'POST', headers: json, body: '["x",' }), 400, /not valid JSON/],
      ['not an array', raw('/api/createClass', { method: 'POST', headers: json, body: '{"0":"x"}' }), 400, /array/],
      ['wrong type', api('createClass', [{ name: 'x' }]), 400, /^createClass: argument 1 must be a string$/],
      ['wrong count', api('createClass', ['x', null, 'extra']), 400, /^createClass: expected 1 to 2 arguments/],
      [
        'proto key',
        raw('/api/startTraining', { method: 'POST', headers: json, body: '[{"preset":"quick","__proto__":{"x":1}}]' }),
        400,
        /__proto__/,
      ],
      [
        'text body',
        raw('/api/createClass', { method: 'POST', headers: { ...json, 'content-type': 'text/plain' }, body: '["x"]' }),
        415,
        /JSON body/,
      ],
      ['GET', raw('/api/listClasses', { headers: json }), 405, /POST/],
      ['too large', api('createClass', ['x'.repeat(1 << 20)]), 413, /^createClass: request body too large$/],
      ['index type', api('getSpotDetails', [sectionId, '0']), 400, /argument 2 must be an integer/],
    ];
    for (const [what, attempt, status, message] of cases) {
      const reply = await attempt;
      expect(reply.status, what).toBe(status);
      expect(errorOf(reply), what).toMatch(message);
    }
    expect(await studio.listClasses()).toEqual(classes);
  });

  it('keeps tiles inside the slide cache: traversal and symlinks out of it are refused', async () => {
    const top = readdirSync(join(cache, slide.key, 'slide_files'))
      .map(Number)
      .sort((a, b) => b - a)[0];
    const attempts = [
      `/tiles/${slide.key}/${top}/999_999.jpeg`, // a link to a secret outside
      `/tiles/${'f'.repeat(64)}/0/0_0.jpeg`, // a whole pyramid folder linked outside
      '/tiles/../outside/secret.jpeg',
      '/tiles/%2e%2e/%2e%2e/outside/secret.jpeg',
      `/tiles/${slide.key}/..%2f..%2f..%2foutside/0_0.jpeg`,
      `/tiles/${slide.key}%2f..%2f..%2foutside/0/0_0.jpeg`,
      '/tiles/..%5c..%5coutside%5csecret.jpeg',
      `/tiles/${slide.key}\\..\\..\\outside/0/0_0.jpeg`,
      `/tiles/${slide.key}/0/0_0.jpeg/../../../../outside/secret.jpeg`,
      `/tiles/${join(outside, 'secret.jpeg')}`,
      `/tiles/${encodeURIComponent(join(outside, 'secret.jpeg'))}`,
      `/tiles/${slide.key}/0/0_0.jpeg%00.png`,
    ];
    for (const path of attempts) {
      const reply = await raw(path, { headers: cookie() });
      expect(reply.status, path).toBe(404);
      expect(errorOf(reply), path).toBe('not found');
    }
  });

  it('keeps static files inside the renderer folder: traversal and symlinks out of it are refused', async () => {
    for (const path of [
      '/assets/secret.js',
      '/linked/secret.txt',
      '/../outside/secret.txt',
      '/%2e%2e/outside/secret.txt',
      '/assets/..%2f..%2foutside%2fsecret.txt',
      '/..%5coutside%5csecret.txt',
      '/assets\\..\\..\\outside\\secret.txt',
      `/${encodeURIComponent(join(outside, 'secret.txt'))}`,
    ]) {
      const reply = await raw(path, { headers: cookie() });
      expect(reply.status, path).toBeGreaterThanOrEqual(400);
      expect(reply.status, path).toBeLessThan(500);
    }
  });

  it('reads user-chosen files through openPath, but never sends their content back', async () => {
    const reply = await api('openPath', [join(outside, 'secret.txt')]);
    expect(reply.status).toBe(400);
    expect(errorOf(reply)).toContain('secret.txt');
    const nul = await api('openPath', [`${demo}\0/etc/passwd`]);
    expect(nul.status).toBe(400);
    expect(errorOf(nul)).toMatch(/^openPath: refused path .* NUL/);
    expect(errorOf(await api('openPath', ['  ']))).toBe('openPath: the path must be a non-empty string');
    const model = await api('importModel', [outside]);
    expect(model.status).toBe(400);
    expect(errorOf(model)).toMatch(/not a DELST model folder/);
    expect(tree(join(project, 'models'))).toEqual([]);
  });

  it('exports annotations only to a new file with the right extension: never over an existing one', async () => {
    const before = tree(outside);
    const attempts: [unknown, RegExp][] = [
      [join(outside, 'victim.csv'), /exists already/],
      [`${project}/../outside/victim.csv`, /exists already/],
      [join(project, 'delst-project.sqlite'), /exists already/],
      ['victim.csv', /must be absolute/],
      ['../outside/new.csv', /must be absolute/],
      ['..\\outside\\new.csv', /must be absolute/],
      [join(outside, 'new.sh'), /must end with \.csv/],
      [join(outside, 'new.csv\0.sh'), /NUL/],
      [join(outside, 'missing-folder', 'new.csv'), /the folder .* does not exist/],
      [join(outside, 'victim.csv', 'new.csv'), /the folder .* does not exist/],
      [join(outside, 'link.csv'), /exists already/],
      [join(outside, 'dangling.csv'), /exists already/],
      [42, /argument 3 must be a string or null/],
    ];
    symlinkSync(join(outside, 'victim.geojson'), join(outside, 'link.csv'));
    symlinkSync(join(outside, 'nowhere.csv'), join(outside, 'dangling.csv'));
    for (const [path, message] of attempts) {
      const reply = await api('exportAnnotations', [sectionId, 'csv', path]);
      expect(reply.status, String(path)).toBe(400);
      expect(errorOf(reply), String(path)).toMatch(message);
    }
    const geojson = await api('exportAnnotations', [sectionId, 'geojson', join(outside, 'new.csv')]);
    expect(errorOf(geojson)).toMatch(/must end with \.geojson or \.json/);
    expect(tree(outside)).toEqual([...before, 'dangling.csv', 'link.csv'].sort());
    for (const file of ['victim.csv', 'victim.geojson', 'secret.txt']) {
      expect(readFileSync(join(outside, file), 'utf8')).toBe(SECRET);
    }
    // A new file is written, once.
    const target = join(outside, 'export.csv');
    const ok = await api('exportAnnotations', [sectionId, 'csv', target]);
    expect(ok.status).toBe(200);
    expect(readFileSync(target, 'utf8')).toBe((JSON.parse(ok.body) as { text: string }).text);
    expect(errorOf(await api('exportAnnotations', [sectionId, 'csv', target]))).toMatch(/exists already/);
  });

  it('exports models only to a new folder, and model ids cannot name paths', async () => {
    const before = tree(outside);
    symlinkSync(join(outside, 'slide_files'), join(outside, 'model-link'));
    const attempts: [string, unknown, RegExp][] = [
      ['base', outside, /exists already/],
      ['base', join(outside, 'model-link'), /exists already/],
      ['base', `${project}/../outside`, /exists already/],
      ['base', 'relative/model', /must be absolute/],
      ['base', join(outside, 'no', 'such', 'model'), /the folder .* does not exist/],
      ['../outside', join(outside, 'm1'), /no model/],
      ['..', join(outside, 'm2'), /no model/],
      ['..%2foutside', join(outside, 'm3'), /no model/],
    ];
    for (const [id, path, message] of attempts) {
      const reply = await api('exportModel', [id, path]);
      expect(reply.status, `${id} ${String(path)}`).toBe(400);
      expect(errorOf(reply), `${id} ${String(path)}`).toMatch(message);
    }
    for (const [method, args] of [
      ['deleteModel', ['../outside']],
      ['deleteModel', ['/']],
      ['renameModel', ['../outside', 'x']],
      ['resumeTraining', ['..\\outside', 1]],
    ] as const) {
      const reply = await api(method, args);
      expect(reply.status, method).toBe(400);
      expect(errorOf(reply), method).toMatch(/no model|read-only/);
    }
    expect(tree(outside)).toEqual([...before, 'model-link'].sort());
    expect(readFileSync(join(outside, 'slide_files', '0', '0_0.jpeg'), 'utf8')).toBe(SECRET);
  });

  it('writes uploads only under the project: traversal in names and file paths is refused', async () => {
    const data = Buffer.from('spot\tx\n').toString('base64');
    for (const path of [
      '../escape.txt',
      '../../outside/escape.txt',
      '/tmp/escape.txt',
      'a/../../escape.txt',
      'a\\..\\escape.txt',
      'C:/escape.txt',
      './x',
      'a//b',
    ]) {
      const reply = await api('uploadSection', ['A1', [{ path, data }], null]);
      expect(reply.status, path).toBe(400);
      expect(errorOf(reply), path).toMatch(/^uploadSection: (refused|bad) file path/);
    }
    // A name that tries to leave is made safe: the chunk is staged under uploads/ and nowhere else.
    const reply = await api('uploadSection', ['../../outside/evil', [{ path: 'notes.txt', data }], { done: false }]);
    expect(reply.status).toBe(200);
    expect(tree(join(project, 'uploads')).filter((f) => f.endsWith('notes.txt'))).toHaveLength(1);
    expect(tree(outside).some((f) => f.includes('escape') || f.includes('evil') || f.includes('notes'))).toBe(false);
    expect(existsSync(join(scratch, 'escape.txt'))).toBe(false);
    expect(existsSync('/tmp/escape.txt')).toBe(false);
  });

  it('never sent the secret in any reply', () => {
    expect(replies.length).toBeGreaterThan(50);
    for (const reply of replies) expect(reply.body).not.toContain(SECRET);
  });
});

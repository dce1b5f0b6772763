// The browser-mode server against a fake StudioApi: the token, the cookie flow, the Host check, confinement of
// static files and tiles, and how API calls and their errors cross HTTP.

import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  AnnotationClassInfo,
  AnnotationExport,
  AnnotationImportReport,
  SectionAnnotations,
  GeneSummary,
  GeneValues,
  OpenPathResult,
  RecentItem,
  SectionSpots,
  SectionSummary,
  SlideInfo,
  SpotDetails,
  StudioApi,
  UploadFile,
  UploadOptions,
  UploadSectionResult,
  ModelInfo,
  PredictionRequest,
  SectionPrediction,
  SimilarSpot,
  HyperbolicMap,
  InferenceStatus,
  TrainingRequest,
  TrainingStatus,
} from '../../core/api/api.js';
import { idleStatus } from '../../core/api/training.js';
import { DataError } from '../../core/readers/errors.js';
import { bodyLimit, startBrowserServer, type BrowserServer, type TileFiles } from '../../server/browser-server.js';
import { rawRequest, type RawOptions } from './support/http.js';

const TOKEN = 'test-token-0123456789abcdefghijklmnop';

const SUMMARY: SectionSummary = {
  id: 's1',
  name: 'A1',
  format: 'legacy-st',
  source: '/data/A1',
  spots: 3,
  genes: 10,
  image: { width: 100, height: 80 },
  micronsPerPixel: 1,
  spotDiameterMicrons: 100,
  labels: { label: { tumour: 2, stroma: 1 } },
  warnings: [],
};

class FakeStudio implements StudioApi {
  readonly calls: Array<[string, unknown[]]> = [];
  readonly slides: TileFiles;

  constructor(tilesDir: string) {
    this.slides = {
      dir: tilesDir,
      tileFile: async (key, level, col, row) => {
        if (key.includes('.') || key.includes('/')) throw new Error('outside the cache');
        if (key === 'abc' && level === 3 && col === 1 && row === 2) return join(tilesDir, 'abc', '3', '1_2.jpeg');
        if (key === 'png' && level === 0 && col === 0 && row === 0) return join(tilesDir, 'png', '0', '0_0.png');
        return null;
      },
    };
  }

  async listSections(): Promise<SectionSummary[]> {
    this.calls.push(['listSections', []]);
    return [SUMMARY];
  }

  async openPath(path: string): Promise<OpenPathResult> {
    this.calls.push(['openPath', [path]]);
    if (path === '/bad/counts.tsv') throw new DataError(path, 'line 3: expected 12 columns, found 2');
    if (path === '/boom') throw new TypeError('something internal broke');
    return { opened: [SUMMARY], failed: [] };
  }

  async listRecent(): Promise<RecentItem[]> {
    this.calls.push(['listRecent', []]);
    return [
      {
        path: '/data/A1',
        name: 'A1',
        format: 'legacy-st',
        sources: ['/data/A1'],
        openedAt: '2025-01-01T00:00:00.000Z',
      },
    ];
  }

  async closeSection(sectionId: string): Promise<SectionSummary[]> {
    this.calls.push(['closeSection', [sectionId]]);
    return [];
  }

  async getSpots(sectionId: string): Promise<SectionSpots> {
    this.calls.push(['getSpots', [sectionId]]);
    return { ids: ['a'], x: [1], y: [2], inTissue: [true], diameter: 5, micronsPerPixel: 2, labels: {} };
  }

  async getSlide(sectionId: string): Promise<SlideInfo | null> {
    this.calls.push(['getSlide', [sectionId]]);
    return null;
  }

  async searchGenes(sectionId: string, query: string, limit?: number): Promise<GeneSummary[]> {
    this.calls.push(['searchGenes', [sectionId, query, limit]]);
    return [GENE];
  }

  async getGeneValues(sectionId: string, gene: string): Promise<GeneValues> {
    this.calls.push(['getGeneValues', [sectionId, gene]]);
    const values = Buffer.from(new Float32Array([0, 2.5]).buffer).toString('base64');
    return { gene: GENE, encoding: 'float32-base64', raw: values, normalised: values, targetSum: 100 };
  }

  async getSpotDetails(sectionId: string, spotIndex: number): Promise<SpotDetails> {
    this.calls.push(['getSpotDetails', [sectionId, spotIndex]]);
    return { index: spotIndex, id: 'a', inTissue: true, totalCounts: 3, nnz: 1, labels: {}, topGenes: [] };
  }

  // Annotation: recorded, answered with fixed values (the real ones are tested in annotation-api.test.ts).
  private palette(method: string, args: unknown[]): Promise<AnnotationClassInfo[]> {
    this.calls.push([method, args]);
    return Promise.resolve([CLASS]);
  }

  private annotations(method: string, args: unknown[]): Promise<SectionAnnotations> {
    this.calls.push([method, args]);
    return Promise.resolve(ANNOTATIONS);
  }

  listClasses = () => this.palette('listClasses', []);
  createClass = async (name: string, color?: string | null) => (await this.palette('createClass', [name, color]))[0];
  renameClass = (id: number, name: string) => this.palette('renameClass', [id, name]);
  recolorClass = (id: number, color: string) => this.palette('recolorClass', [id, color]);
  reorderClasses = (ids: number[]) => this.palette('reorderClasses', [ids]);
  deleteClass = (id: number) => this.palette('deleteClass', [id]);
  getAnnotations = (sectionId: string) => this.annotations('getAnnotations', [sectionId]);
  labelSpots = (sectionId: string, spots: number[], classId: number | null) =>
    this.annotations('labelSpots', [sectionId, spots, classId]);
  addRegion = (sectionId: string, polygon: [number, number][], classId: number | null) =>
    this.annotations('addRegion', [sectionId, polygon, classId]);
  deleteRegion = (sectionId: string, regionId: string) => this.annotations('deleteRegion', [sectionId, regionId]);
  undo = (sectionId: string) => this.annotations('undo', [sectionId]);
  redo = (sectionId: string) => this.annotations('redo', [sectionId]);

  async exportAnnotations(
    sectionId: string,
    format: 'geojson' | 'csv',
    path?: string | null,
  ): Promise<AnnotationExport> {
    this.calls.push(['exportAnnotations', [sectionId, format, path]]);
    return { format, fileName: 'A1-annotations.csv', text: 'spot_id,label\n', path: null };
  }

  async importAnnotations(sectionId: string, format: 'geojson' | 'csv', text: string): Promise<AnnotationImportReport> {
    this.calls.push(['importAnnotations', [sectionId, format, text.length]]);
    return { spotsChanged: 0, regionsAdded: 0, classesCreated: [], warnings: [], annotations: ANNOTATIONS };
  }

  async uploadSection(name: string, files: UploadFile[], options?: UploadOptions | null): Promise<UploadSectionResult> {
    this.calls.push(['uploadSection', [name, files.map((f) => f.data.length), options]]);
    return { uploadId: 'u1', path: null, opened: [], failed: [] };
  }

  // Training: recorded, answered with fixed values (the real ones are tested in training-api.test.ts).
  private training(method: string, args: unknown[]): Promise<TrainingStatus> {
    this.calls.push([method, args]);
    return Promise.resolve(TRAINING);
  }

  private models(method: string, args: unknown[]): Promise<ModelInfo[]> {
    this.calls.push([method, args]);
    return Promise.resolve([]);
  }

  startTraining = (request: TrainingRequest) => this.training('startTraining', [request]);
  getTrainingStatus = () => this.training('getTrainingStatus', []);
  cancelTraining = () => this.training('cancelTraining', []);
  resumeTraining = (id: string, epochs?: number | null) => this.training('resumeTraining', [id, epochs]);
  listModels = () => this.models('listModels', []);
  renameModel = (id: string, name: string) => this.models('renameModel', [id, name]);
  deleteModel = (id: string) => this.models('deleteModel', [id]);
  exportModel = async (id: string, path: string) => {
    this.calls.push(['exportModel', [id, path]]);
    return { path };
  };
  importModel = async (path: string): Promise<ModelInfo> => {
    this.calls.push(['importModel', [path]]);
    throw new DataError(path, 'not a DELST model folder');
  };

  predictSection = async (sectionId: string, request: PredictionRequest): Promise<SectionPrediction> => {
    this.calls.push(['predictSection', [sectionId, request]]);
    return { modelId: request.modelId, referenceSectionIds: [sectionId], genes: [], warnings: [] };
  };
  findSimilarSpots = async (): Promise<SimilarSpot[]> => [];
  tileSection = async (): Promise<never> => {
    throw new Error('tileSection: not a bare H&E image');
  };
  getHyperbolicMap = async (): Promise<HyperbolicMap> => ({
    modelId: 'base',
    curvature: 1,
    projection: '',
    sections: [],
  });
  getInferenceStatus = async (): Promise<InferenceStatus> => {
    this.calls.push(['getInferenceStatus', []]);
    return INFERENCE_IDLE;
  };
  cancelInference = async (): Promise<InferenceStatus> => {
    this.calls.push(['cancelInference', []]);
    return INFERENCE_IDLE;
  };
}

const INFERENCE_IDLE: InferenceStatus = {
  running: false,
  job: null,
  phase: null,
  sectionName: null,
  done: 0,
  total: 0,
  section: 0,
  sections: 0,
  fraction: 0,
  etaSeconds: null,
  startedAt: null,
  queued: 0,
};

const TRAINING: TrainingStatus = idleStatus('CPU via wasm SIMD, 2 threads');

const CLASS: AnnotationClassInfo = { id: 1, name: 'tumour', color: '#d62728' };
const ANNOTATIONS: SectionAnnotations = { labels: [null], regions: [], canUndo: false, canRedo: false };

const GENE: GeneSummary = { index: 4, symbol: 'ERBB2', id: null, totalCounts: 12, spots: 3 };

let dir: string;
let studio: FakeStudio;
let server: BrowserServer;
const reported: Array<[string, unknown]> = [];

/** A raw HTTP request to the server. */
const raw = (path: string, options?: RawOptions) => rawRequest(server.port, path, options);

const withToken = (extra: Record<string, string> = {}): Record<string, string> => ({
  'x-delst-token': TOKEN,
  ...extra,
});
const api = (method: string, args: unknown, headers = withToken({ 'content-type': 'application/json' })) =>
  raw(`/api/${method}`, { method: 'POST', headers, body: JSON.stringify(args) });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'delst-server-'));
  const renderer = join(dir, 'renderer');
  mkdirSync(join(renderer, 'assets'), { recursive: true });
  writeFileSync(join(renderer, 'index.html'), '<!doctype html><title>DELST</title>');
  writeFileSync(join(renderer, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(renderer, 'assets', 'app.css'), 'body{}');
  writeFileSync(join(renderer, '.env'), 'SECRET=1');
  writeFileSync(join(dir, 'secret.txt'), 'outside the renderer');
  symlinkSync(join(dir, 'secret.txt'), join(renderer, 'assets', 'link.txt'));
  mkdirSync(join(dir, 'tiles', 'abc', '3'), { recursive: true });
  writeFileSync(join(dir, 'tiles', 'abc', '3', '1_2.jpeg'), Buffer.from([0xff, 0xd8, 0xff, 0xd9]));
  mkdirSync(join(dir, 'tiles', 'png', '0'), { recursive: true });
  writeFileSync(join(dir, 'tiles', 'png', '0', '0_0.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  studio = new FakeStudio(join(dir, 'tiles'));
  server = await startBrowserServer({
    studio,
    rendererDir: renderer,
    token: TOKEN,
    onError: (context, error) => reported.push([context, error]),
  });
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('browser server', () => {
  it('listens on 127.0.0.1 and hands out a token URL', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${TOKEN}`);
    expect(server.port).toBeGreaterThan(0);
  });

  it('makes a fresh random token per run', async () => {
    const other = await startBrowserServer({ studio, rendererDir: join(dir, 'renderer') });
    try {
      expect(other.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(other.token).not.toBe(TOKEN);
      expect(other.url).toContain(`?token=${other.token}`);
    } finally {
      await other.close();
    }
  });

  it('refuses requests without the token', async () => {
    for (const path of ['/', '/index.html', '/assets/app.js', '/tiles/abc/3/1_2.jpeg', '/nothing']) {
      const reply = await raw(path);
      expect(reply.status, path).toBe(403);
      expect(reply.body).not.toContain('<title>');
    }
    expect((await api('listSections', [], { 'content-type': 'application/json' })).status).toBe(403);
    expect(studio.calls).toEqual([]);
  });

  it('refuses a wrong token, in the header, the query or the cookie', async () => {
    const wrong = TOKEN.slice(0, -1) + 'X';
    expect((await api('listSections', [], { 'x-delst-token': wrong, 'content-type': 'application/json' })).status).toBe(
      403,
    );
    expect(
      (await api('listSections', [], { 'x-delst-token': 'short', 'content-type': 'application/json' })).status,
    ).toBe(403);
    expect((await raw(`/?token=${wrong}`)).status).toBe(403);
    expect((await raw('/', { headers: { cookie: `delst_token_${server.port}=${wrong}` } })).status).toBe(403);
    // A query token opens the page only, not assets or tiles.
    expect((await raw(`/assets/app.js?token=${TOKEN}`)).status).toBe(403);
    expect(studio.calls).toEqual([]);
  });

  it('answers API calls that carry the token header', async () => {
    const reply = await api('listSections', []);
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(reply.body)).toEqual([SUMMARY]);
    const spots = await api('getSpots', ['s1']);
    expect(JSON.parse(spots.body).diameter).toBe(5);
    expect(studio.calls.at(-1)).toEqual(['getSpots', ['s1']]);
    // null results come back as JSON null
    expect(JSON.parse((await api('getSlide', ['s1'])).body)).toBeNull();
  });

  it('routes the viewer calls (gene search, gene values, spot details) with their arguments', async () => {
    expect(JSON.parse((await api('searchGenes', ['s1', 'erb', 5])).body)).toEqual([GENE]);
    expect(studio.calls.at(-1)).toEqual(['searchGenes', ['s1', 'erb', 5]]);
    const values = JSON.parse((await api('getGeneValues', ['s1', 'ERBB2'])).body) as GeneValues;
    expect(values.encoding).toBe('float32-base64');
    expect(Array.from(new Float32Array(new Uint8Array(Buffer.from(values.raw, 'base64')).buffer))).toEqual([0, 2.5]);
    expect(JSON.parse((await api('getSpotDetails', ['s1', 7])).body).index).toBe(7);
    expect(studio.calls.at(-1)).toEqual(['getSpotDetails', ['s1', 7]]);
  });

  it('routes the slide library calls (recent paths, closing a section)', async () => {
    expect((JSON.parse((await api('listRecent', [])).body) as RecentItem[])[0].name).toBe('A1');
    expect(studio.calls.at(-1)).toEqual(['listRecent', []]);
    expect(JSON.parse((await api('closeSection', ['s1'])).body)).toEqual([]);
    expect(studio.calls.at(-1)).toEqual(['closeSection', ['s1']]);
  });

  it('routes the training and model library calls', async () => {
    const request = { sectionIds: ['s1'], preset: 'quick', epochs: 2 };
    expect((JSON.parse((await api('startTraining', [request])).body) as TrainingStatus).backend).toContain('wasm');
    expect(studio.calls.at(-1)).toEqual(['startTraining', [request]]);
    expect(JSON.parse((await api('getTrainingStatus', [])).body).state).toBe('idle');
    await api('resumeTraining', ['m1', 4]);
    expect(studio.calls.at(-1)).toEqual(['resumeTraining', ['m1', 4]]);
    expect(JSON.parse((await api('renameModel', ['m1', 'new'])).body)).toEqual([]);
    expect(studio.calls.at(-1)).toEqual(['renameModel', ['m1', 'new']]);
    expect(JSON.parse((await api('exportModel', ['m1', '/tmp/x'])).body)).toEqual({ path: '/tmp/x' });
    const failed = await api('importModel', ['/nowhere']);
    expect(failed.status).toBeGreaterThanOrEqual(400);
    expect(JSON.parse(failed.body).error).toContain('not a DELST model folder');
    const predicted = JSON.parse((await api('predictSection', ['s1', { modelId: 'base', genes: ['ERBB2'] }])).body);
    expect(predicted).toMatchObject({ modelId: 'base', referenceSectionIds: ['s1'] });
    expect(studio.calls.at(-1)).toEqual(['predictSection', ['s1', { modelId: 'base', genes: ['ERBB2'] }]]);
    expect(JSON.parse((await api('getInferenceStatus', [])).body)).toEqual(INFERENCE_IDLE);
    expect(studio.calls.at(-1)).toEqual(['getInferenceStatus', []]);
    expect(JSON.parse((await api('cancelInference', [])).body).running).toBe(false);
    expect(studio.calls.at(-1)).toEqual(['cancelInference', []]);
  });

  it('does not accept the cookie alone for the API', async () => {
    const cookie = `delst_token_${server.port}=${TOKEN}`;
    const reply = await api('listSections', [], { cookie, 'content-type': 'application/json' });
    expect(reply.status).toBe(403);
  });

  it('sets an HttpOnly SameSite=Strict cookie on /?token= that then opens assets and tiles', async () => {
    const page = await raw(`/?token=${TOKEN}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>DELST</title>');
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    const setCookie = String(page.headers['set-cookie']);
    expect(setCookie).toContain(`delst_token_${server.port}=${TOKEN}`);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/');
    const cookie = setCookie.split(';')[0];

    const js = await raw('/assets/app.js', { headers: { cookie } });
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    const css = await raw('/assets/app.css', { headers: { cookie: `other=1; ${cookie}` } });
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await raw('/', { headers: { cookie } })).status).toBe(200);

    const tile = await raw('/tiles/abc/3/1_2.jpeg', { headers: { cookie } });
    expect(tile.status).toBe(200);
    expect(tile.headers['content-type']).toBe('image/jpeg');
    const png = await raw('/tiles/png/0/0_0.png', { headers: { cookie } });
    expect(png.headers['content-type']).toBe('image/png');
  });

  it('sends security headers', async () => {
    const reply = await raw('/', { headers: { cookie: `delst_token_${server.port}=${TOKEN}` } });
    const csp = String(reply.headers['content-security-policy']);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("img-src 'self' blob: data:");
    expect(csp).not.toMatch(/https?:|\*|unsafe-eval/);
    expect(reply.headers['x-content-type-options']).toBe('nosniff');
    expect(reply.headers['referrer-policy']).toBe('no-referrer');
    // so do refusals
    expect((await raw('/')).headers['x-content-type-options']).toBe('nosniff');
  });

  it('keeps static files inside the renderer folder', async () => {
    const headers = withToken();
    const attempts = [
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/assets/%2e%2e/%2e%2e/secret.txt',
      '/assets/..%2f..%2fsecret.txt',
      '/..%5c..%5csecret.txt',
      '/assets/link.txt',
      '/.env',
      '/%00index.html',
      '/assets/',
      '/assets',
      `/${encodeURIComponent(join(dir, 'secret.txt'))}`,
      '/%',
    ];
    for (const path of attempts) {
      const reply = await raw(path, { headers });
      expect(reply.status, path).toBeGreaterThanOrEqual(400);
      expect(reply.body, path).not.toContain('outside the renderer');
      expect(reply.body, path).not.toContain('SECRET');
    }
    expect((await raw('/assets/app.js', { headers })).status).toBe(200);
  });

  it('serves only well-formed tile paths that the cache knows', async () => {
    const headers = withToken();
    expect((await raw('/tiles/abc/3/1_2.jpeg', { headers })).status).toBe(200);
    const attempts = [
      '/tiles/abc/3/9_9.jpeg', // not in the cache
      '/tiles/abc/3/1_2.png', // wrong format
      '/tiles/../secret.txt',
      '/tiles/..%2f..%2fsecret/3/1_2.jpeg',
      '/tiles/abc/../../secret.txt',
      '/tiles/abc/3/1_2.jpeg/../../../secret.txt',
      '/tiles/a.b/3/1_2.jpeg',
      '/tiles/abc/-1/1_2.jpeg',
      '/tiles/abc/3/1_2.jpeg.exe',
      '/tiles/abc/3/1_2',
    ];
    for (const path of attempts) {
      const reply = await raw(path, { headers });
      expect(reply.status, path).toBe(404);
      expect(reply.body).not.toContain('outside the renderer');
    }
  });

  it('checks the Host header against DNS rebinding', async () => {
    for (const host of ['evil.example:' + server.port, `127.0.0.1:${server.port + 1}`, '127.0.0.1', 'localhost']) {
      const reply = await raw('/', { headers: { ...withToken(), host } });
      expect(reply.status, host).toBe(403);
    }
    const local = await raw('/', { headers: { ...withToken(), host: `localhost:${server.port}` } });
    expect(local.status).toBe(200);
  });

  it('rejects methods outside the API', async () => {
    const before = studio.calls.length;
    for (const name of ['constructor', 'toString', '__proto__', 'slides', 'hasOwnProperty', 'nope']) {
      const reply = await api(name, []);
      expect(reply.status, name).toBe(404);
      expect(JSON.parse(reply.body).error).toMatch(/unknown API method/);
    }
    expect(studio.calls.length).toBe(before);
  });

  it('rejects malformed API requests', async () => {
    const headers = withToken({ 'content-type': 'application/json' });
    expect((await raw('/api/listSections', { method: 'GET', headers })).status).toBe(405);
    expect((await raw('/api/listSections', { method: 'POST', headers, body: '{not json' })).status).toBe(400);
    expect((await raw('/api/listSections', { method: 'POST', headers, body: '{"a":1}' })).status).toBe(400);
    const text = withToken({ 'content-type': 'text/plain' });
    expect((await raw('/api/listSections', { method: 'POST', headers: text, body: '[]' })).status).toBe(415);
    expect(
      (await raw('/api/listSections', { method: 'POST', headers, body: `[${'1,'.repeat(600_000)}1]` })).status,
    ).toBe(413);
    // An uploaded annotation file may be larger than other calls' arguments.
    const big = JSON.stringify(['s1', 'csv', 'x'.repeat(3_000_000)]);
    const upload = await raw('/api/importAnnotations', { method: 'POST', headers, body: big });
    expect(upload.status).toBe(200);
    expect(studio.calls.at(-1)).toEqual(['importAnnotations', ['s1', 'csv', 3_000_000]]);
    // An upload's chunk (8 MiB of bytes, base64) passes; 17 MiB is refused before the core sees it.
    const chunk = (chars: number) =>
      JSON.stringify(['A1', [{ path: 'counts.tsv.gz', data: 'A'.repeat(chars), offset: 0 }], { done: false }]);
    const fits = await raw('/api/uploadSection', { method: 'POST', headers, body: chunk(11_200_000) });
    expect(fits.status).toBe(200);
    expect(studio.calls.at(-1)).toEqual(['uploadSection', ['A1', [11_200_000], { done: false }]]);
    const calls = studio.calls.length;
    const tooBig = await raw('/api/uploadSection', { method: 'POST', headers, body: chunk(17 << 20) });
    expect(tooBig.status).toBe(413);
    expect(studio.calls.length).toBe(calls);
    expect(bodyLimit('uploadSection')).toBe(16 << 20);
    expect(bodyLimit('openPath')).toBe(1 << 20);
    expect((await raw('/', { method: 'POST', headers })).status).toBe(405);
  });

  it('returns DataError messages as they are, without a stack', async () => {
    const reply = await api('openPath', ['/bad/counts.tsv']);
    expect(reply.status).toBe(400);
    expect(JSON.parse(reply.body)).toEqual({ error: '/bad/counts.tsv: line 3: expected 12 columns, found 2' });
    expect(reply.body).not.toMatch(/\bat\s|\.ts:\d/);
    expect(reported).toEqual([]);
  });

  it('returns other errors as a message without a stack', async () => {
    const reply = await api('openPath', ['/boom']);
    expect(reply.status).toBe(400);
    expect(JSON.parse(reply.body)).toEqual({ error: 'something internal broke' });
    expect(reported.at(-1)?.[0]).toBe('delst api openPath');
  });

  it('serves 404 for unknown files', async () => {
    expect((await raw('/missing.js', { headers: withToken() })).status).toBe(404);
  });
});

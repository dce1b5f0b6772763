// The offline guarantee, end to end: a full session in the app (open the demo and a second section, annotate,
// train one Quick epoch, predict with the new model, export GeoJSON) while every network request of the renderer
// (Playwright's request, route and WebSocket events, and the DevTools Network domain) and every socket, DNS query
// and HTTP call of the core (the browser-mode app in a child process started with network-recorder.mjs) is
// recorded. Anything that is not 127.0.0.1 or localhost fails the test, named.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelInfo, SectionSpots, SectionSummary } from '../../core/api/api.js';
import { demoPath, packageRoot } from '../../core/resources.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../../bench/chromium.js';
import { onScreen } from './helpers.js';

const root = packageRoot();
const launcher = join(root, 'dist', 'launch.js');
const recorder = join(root, 'test', 'e2e', 'network-recorder.mjs');
const second = resolve(root, '..', 'shared', 'data', 'her2st', 'A1');

const skipReason = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`
  : !existsSync(join(root, 'dist', 'renderer', 'index.html')) || !existsSync(launcher)
    ? 'app not built (run npm run build)'
    : !existsSync(demoPath())
      ? 'no demo section (run npm run make-demo)'
      : !existsSync(second)
        ? `no second section at ${second} (see ../shared/data/README)`
        : null;
if (skipReason) console.log(`offline e2e skipped: ${skipReason}`);

/** A destination on this machine: the loopback interface, by address or name, or a Unix socket. */
function isLocal(host: string | null): boolean {
  if (host === null) return false;
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return (
    bare === 'localhost' ||
    /^127\.\d+\.\d+\.\d+$/.test(bare) ||
    bare === '::1' ||
    /^::ffff:(127\.|7f[0-9a-f]{2}:)/.test(bare) ||
    bare.startsWith('unix:')
  );
}

/** Whether the renderer may load a URL: the app's own server, or in-page data. */
function isLocalUrl(url: string): boolean {
  const parsed = new URL(url);
  if (['data:', 'blob:', 'about:'].includes(parsed.protocol)) return true;
  return ['http:', 'ws:'].includes(parsed.protocol) && isLocal(parsed.hostname);
}

interface CoreAttempt {
  kind: string;
  host: string | null;
  port: number | string | null;
  thread: string;
}

describe.skipIf(skipReason !== null)('offline: a full session reaches nothing but 127.0.0.1', () => {
  let scratch: string;
  let log: string;
  let app: ChildProcess;
  let output = '';
  let url: string;
  let token: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const rendererUrls: string[] = [];
  const problems: string[] = [];

  /** The API as the test calls it (from this process, which is not recorded). */
  async function call<T>(method: string, args: unknown[]): Promise<T> {
    const response = await fetch(new URL(`/api/${method}`, url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-delst-token': token },
      body: JSON.stringify(args),
    });
    if (!response.ok) throw new Error(`${method}: ${await response.text()}`);
    return (await response.json()) as T;
  }

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'delst-offline-'));
    log = join(scratch, 'network.jsonl');
    // Pyramids come from the e2e tests' cache (content-keyed), like a user's cache between runs.
    const cacheDir = join(root, '.delst-cache', 'e2e');
    mkdirSync(cacheDir, { recursive: true });
    app = spawn(
      process.execPath,
      ['--import', pathToFileURL(recorder).href, launcher, '--browser', '--project', join(scratch, 'project')],
      { env: { ...process.env, DELST_NETWORK_LOG: log, DELST_CACHE_DIR: cacheDir }, stdio: 'pipe' },
    );
    url = await new Promise<string>((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`the app did not start:\n${output}`)), 60_000);
      const read = (chunk: Buffer) => {
        output += chunk.toString();
        const found = /browser mode at (http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)/.exec(output);
        if (found) {
          clearTimeout(timer);
          done(found[1]);
        }
      };
      app.stdout!.on('data', read);
      app.stderr!.on('data', read);
      app.on('exit', (code) => fail(new Error(`the app exited (${code}):\n${output}`)));
    });
    token = new URL(url).searchParams.get('token')!;

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    context = await browser.newContext({ viewport: { width: 1400, height: 860 }, acceptDownloads: true });
    // Every request of every page and worker: recorded, and stopped unless it is local.
    await context.route('**/*', (route) => {
      const target = route.request().url();
      rendererUrls.push(target);
      return isLocalUrl(target) ? route.continue() : route.abort('blockedbyclient');
    });
    context.on('request', (request) => rendererUrls.push(request.url()));
    page = await context.newPage();
    page.on('websocket', (socket) => rendererUrls.push(socket.url()));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    cdp.on('Network.requestWillBeSent', (event) => rendererUrls.push(event.request.url));
    cdp.on('Network.webSocketCreated', (event) => rendererUrls.push(event.url));
    await page.goto(`${url}&drawer=canvas&overlay=webgl`);
  });

  afterAll(async () => {
    await browser?.close();
    if (app && app.exitCode === null) {
      const exited = new Promise((done) => app.once('exit', done));
      app.kill('SIGTERM');
      const timer = setTimeout(() => app.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const stage = () => page.locator('[data-testid=slide]');

  async function show(id: string): Promise<void> {
    await page.locator(`[data-testid=section][data-section-id="${id}"]`).click();
    await expect.poll(() => stage().getAttribute('data-section-id'), { timeout: 15_000 }).toBe(id);
    await expect.poll(() => stage().getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
  }

  it('runs a full session: open, annotate, train one epoch, predict, export', async () => {
    // Open: the demo (opened at start) and a second section through the path box.
    await expect.poll(() => page.locator('[data-testid=section]').count(), { timeout: 30_000 }).toBe(1);
    const [demo] = await call<SectionSummary[]>('listSections', []);
    await page.locator('[data-testid=open-path]').fill(second);
    await page.locator('[data-testid=open-button]').click();
    await expect.poll(() => page.locator('[data-testid=section]').count(), { timeout: 30_000 }).toBe(2);
    const other = (await call<SectionSummary[]>('listSections', [])).find((s) => s.id !== demo.id)!;
    await expect.poll(() => stage().getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');

    // Annotate three spots of the demo with the click tool.
    await show(demo.id);
    const spots = await call<SectionSpots>('getSpots', [demo.id]);
    await page.locator('[data-testid=annotate-toggle]').click();
    await page.locator('[data-testid=class-item] [data-testid=class-pick]').first().click();
    await page.locator('[data-testid=tool-click]').click();
    const box = (await stage().boundingBox())!;
    const inside = spots.ids.map((_, i) => i).filter((i) => spots.inTissue[i]);
    for (const i of [inside[0], inside[Math.floor(inside.length / 2)], inside[inside.length - 1]]) {
      const p = onScreen(await stage().getAttribute('data-view'), spots, i);
      await page.mouse.click(box.x + p.x, box.y + p.y);
      await expect.poll(() => stage().getAttribute('data-annotate-busy'), { timeout: 15_000 }).toBe('false');
    }
    await expect
      .poll(
        async () => (await call<{ labels: (string | null)[] }>('getAnnotations', [demo.id])).labels.filter(Boolean),
        {
          timeout: 15_000,
        },
      )
      .toHaveLength(3);

    // Train one Quick epoch on the demo.
    await page.locator('[data-testid=train-toggle]').click();
    await page.locator(`[data-testid=train-section][data-section-id="${demo.id}"]`).check();
    await page.locator('[data-testid=preset-quick]').click();
    await page.locator('[data-testid=train-epochs]').fill('1');
    await page.locator('[data-testid=train-name]').fill('Offline');
    await page.locator('[data-testid=train-start]').click();
    await expect.poll(() => page.locator('[data-testid=train-state]').textContent(), { timeout: 60_000 }).toBe('done');
    const model = (await call<ModelInfo[]>('listModels', [])).find((m) => m.name === 'Offline')!;
    expect(model.epochs).toBe(1);
    await page.locator('[data-testid=train-toggle]').click();

    // Predict the demo's classes with the new model. The second section is closed first: as a reference it would
    // double the embedding work (on the CPU), and the requests would be the same.
    await page.locator(`[data-testid=close-section][data-section-id="${other.id}"]`).click();
    await expect.poll(() => page.locator('[data-testid=section]').count(), { timeout: 15_000 }).toBe(1);
    await page.reload(); // the viewer lists the models when it opens
    await expect.poll(() => stage().getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
    await page.locator('[data-testid=prediction-model]').selectOption(model.id);
    const option = page.locator('[data-testid=prediction-group] option').first();
    await page.locator('[data-testid=label-select]').selectOption((await option.getAttribute('value'))!);
    await expect.poll(() => stage().getAttribute('data-colour-by'), { timeout: 15_000 }).toBe('predicted-class');
    await expect.poll(() => stage().getAttribute('data-predicting'), { timeout: 120_000 }).toBe('false');
    await expect.poll(() => page.locator('[data-testid=legend-entry]').count(), { timeout: 15_000 }).toBeGreaterThan(0);

    // Export the demo's annotations as GeoJSON.
    await page.locator('[data-testid=annotate-toggle]').click();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('[data-testid=export-geojson]').click(),
    ]);
    const collection = JSON.parse(readFileSync(await download.path(), 'utf8')) as {
      features: { properties: { classification?: { name: string } } }[];
    };
    expect(collection.features.filter((f) => f.properties.classification).length).toBeGreaterThanOrEqual(3);
    expect(problems).toEqual([]);
  }, 180_000);

  it('the renderer requested nothing but the local server', () => {
    expect(rendererUrls.length).toBeGreaterThan(20);
    expect(rendererUrls.filter((u) => new URL(u).protocol === 'http:').length).toBeGreaterThan(20);
    expect([...new Set(rendererUrls.filter((u) => !isLocalUrl(u)))]).toEqual([]);
  });

  it('the core reached nothing but 127.0.0.1 (its main thread and its training worker both recorded)', async () => {
    // Stop the app so that the last socket sample is written.
    const exited = new Promise((done) => app.once('exit', done));
    app.kill('SIGTERM');
    await exited;
    const attempts = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as CoreAttempt);
    const loaded = attempts.filter((a) => a.kind === 'loaded').map((a) => a.thread);
    expect(loaded).toContain('main');
    expect(loaded.some((t) => t.startsWith('worker'))).toBe(true);
    const remote = attempts.filter((a) => a.kind !== 'loaded' && !isLocal(a.host));
    expect(remote.map((a) => `${a.kind} ${a.host}:${a.port} (${a.thread})`)).toEqual([]);
  });
});

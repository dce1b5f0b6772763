// End to end: the built renderer in headless Chromium, against the real core (Studio) through the browser-mode
// server, on the bundled demo and a second HER2ST section. Needs `npm run build` (npm test does it) and Debian's
// chromium; skips with the reason otherwise.

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SectionSummary } from '../../core/api/api.js';
import { Studio } from '../../core/api/studio.js';
import { demoPath, packageRoot } from '../../core/resources.js';
import { startBrowserServer, type BrowserServer } from '../../server/browser-server.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

const root = packageRoot();
const rendererDir = join(root, 'dist', 'renderer');
const demo = demoPath();
const second = resolve(root, '..', 'shared', 'data', 'her2st', 'A1');

const skipReason = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`
  : !existsSync(join(rendererDir, 'index.html'))
    ? 'renderer not built (run npm run build)'
    : !existsSync(demo)
      ? `no demo section at ${demo} (run npm run make-demo)`
      : null;
if (skipReason) console.log(`app e2e skipped: ${skipReason}`);

const number = new Intl.NumberFormat('en-US');

describe.skipIf(skipReason !== null)('DELST Studio in Chromium (browser mode)', () => {
  let studio: Studio;
  let server: BrowserServer;
  let browser: Browser;
  let page: Page;
  let sections: SectionSummary[];
  let scratch: string;
  const problems: string[] = [];

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'delst-e2e-'));
    // Pyramids are cached across runs (content-keyed), like a user's cache.
    const cacheDir = join(root, '.delst-cache', 'e2e');
    mkdirSync(cacheDir, { recursive: true });
    studio = new Studio({ cacheDir });
    await studio.openPath(demo);
    if (existsSync(second)) await studio.openPath(second);
    sections = await studio.listSections();
    server = await startBrowserServer({ studio, rendererDir });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.url}&drawer=canvas`);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** Spots the overlay should draw for a section at the start: its in-tissue spots. */
  async function inTissue(id: string): Promise<number> {
    return (await studio.getSpots(id)).inTissue.filter(Boolean).length;
  }

  async function waitForSlide(id: string): Promise<void> {
    const stage = page.locator(`[data-testid=slide][data-section-id="${id}"]`);
    await expect.poll(() => stage.getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
  }

  it('lists the open sections with their spot counts', async () => {
    expect(sections.length).toBe(existsSync(second) ? 2 : 1);
    const items = page.locator('[data-testid=section]');
    await expect.poll(() => items.count()).toBe(sections.length);
    for (const section of sections) {
      const item = page.locator(`[data-testid=section][data-section-id="${section.id}"]`);
      expect(await item.locator('[data-testid=spots]').textContent()).toBe(`${number.format(section.spots)} spots`);
      const text = await item.textContent();
      expect(text).toContain(section.name);
      expect(text).toContain(`${number.format(section.genes)} genes`);
    }
    // The token left the address bar once read.
    expect(page.url()).not.toContain('token=');
    expect(page.url()).toContain('drawer=canvas');
  });

  it("loads the first section's slide tiles and draws its in-tissue spots", async () => {
    const [first] = sections;
    await waitForSlide(first.id);
    const stage = page.locator('[data-testid=slide]');
    const expected = await inTissue(first.id);
    expect(expected).toBe(first.spots);
    await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(expected));
  });

  it('colours spots by a label column, with a legend of class counts', async () => {
    const [first] = sections;
    // The column with the most classes (some columns may hold no values in tissue).
    const columns = Object.keys(first.labels).sort(
      (a, b) => Object.keys(first.labels[b]).length - Object.keys(first.labels[a]).length,
    );
    const column = columns[0];
    expect(Object.keys(first.labels[column] ?? {}).length).toBeGreaterThan(1);
    await page.locator('[data-testid=label-select]').selectOption(column);
    const entries = page.locator('[data-testid=legend-entry]');
    await expect.poll(() => entries.count()).toBeGreaterThan(0);
    const shown: Record<string, number> = {};
    for (const entry of await entries.all()) {
      shown[(await entry.getAttribute('data-class')) ?? ''] = Number(await entry.getAttribute('data-count'));
    }
    for (const [name, count] of Object.entries(first.labels[column])) expect(shown[name], name).toBe(count);
    expect(await page.locator('[data-testid=legend]').textContent()).toContain(column);
    // Still every in-tissue spot, now coloured.
    expect(await page.locator('[data-testid=slide]').getAttribute('data-spots-drawn')).toBe(String(first.spots));
    await page.waitForTimeout(300);
    mkdirSync(join(root, 'test-results'), { recursive: true });
    await page.screenshot({ path: join(root, 'test-results', 'app.png') });
  });

  it.skipIf(!existsSync(second))('switches to the second section (skipped without ../shared/data)', async () => {
    const target = sections[1];
    await page.locator(`[data-testid=section][data-section-id="${target.id}"]`).click();
    await waitForSlide(target.id);
    const stage = page.locator('[data-testid=slide]');
    await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(await inTissue(target.id)));
    await page.screenshot({ path: join(root, 'test-results', 'app-second.png') });
  });

  it('shows the error naming the file when a path cannot be opened', async () => {
    const bad = join(scratch, 'not-a-section.txt');
    writeFileSync(bad, 'this is not a count matrix\n');
    await page.locator('[data-testid=open-path]').fill(bad);
    await page.locator('[data-testid=open-button]').click();
    const error = page.locator('[data-testid=open-error]');
    await expect.poll(() => error.textContent()).toContain(bad);
    expect(await error.textContent()).toContain('unknown format');

    const missing = join(scratch, 'missing-folder');
    await page.locator('[data-testid=open-path]').fill(missing);
    await page.locator('[data-testid=open-button]').click();
    await expect.poll(() => error.textContent()).toContain(`${missing}: no such file or folder`);
    expect(await page.locator('[data-testid=section]').count()).toBe(sections.length);
    await page.screenshot({ path: join(root, 'test-results', 'app-error.png') });
  });

  it.skipIf(!existsSync(second))(
    'opens another section from the path box (skipped without ../shared/data)',
    async () => {
      await page.locator('[data-testid=open-path]').fill(second);
      await page.locator('[data-testid=open-button]').click();
      const items = page.locator('[data-testid=section]');
      await expect.poll(() => items.count()).toBe(sections.length + 1);
      expect(await page.locator('[data-testid=open-error]').count()).toBe(0);
    },
  );

  it('ran without page errors or CSP violations', () => {
    // The 400 answers to the bad paths above are expected console noise from fetch.
    const unexpected = problems.filter((text) => !/status of 400/.test(text));
    expect(unexpected).toEqual([]);
  });
});

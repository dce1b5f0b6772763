// End to end: the built renderer in headless Chromium, against the real core (Studio) through the browser-mode
// server, on the bundled demo and a second HER2ST section. Needs `npm run build` (npm test does it) and Debian's
// chromium; skips with the reason otherwise.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SectionSpots, SectionSummary } from '../../core/api/api.js';
import { Studio } from '../../core/api/studio.js';
import { demoPath, packageRoot } from '../../core/resources.js';
import { startBrowserServer, type BrowserServer } from '../../server/browser-server.js';
import { CHROMIUM } from '../../bench/chromium.js';
import { closeApp, e2eCacheDir, greenPixels, launchApp, onScreen, openApp, pixels } from './helpers.js';

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

/** The 99th percentile by nearest rank: the colour bar's default upper limit. */
function percentile99(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(0.99 * sorted.length) - 1)];
}

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
    studio = new Studio({ cacheDir: e2eCacheDir() });
    await studio.openPath(demo);
    if (existsSync(second)) await studio.openPath(second);
    sections = await studio.listSections();
    // The spots through WebGL2 here (the app picks canvas 2D on software WebGL by itself; a test below covers it).
    ({ server, browser, page } = await launchApp(studio, problems));
  });

  afterAll(() => closeApp({ browser, server, studio }, scratch));

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

  it('hides a class when its legend entry is clicked, and shows it again', async () => {
    const stage = page.locator('[data-testid=slide]');
    const before = Number(await stage.getAttribute('data-spots-drawn'));
    const entry = page.locator('[data-testid=legend-entry]').first();
    const name = await entry.getAttribute('data-class');
    const count = Number(await entry.getAttribute('data-count'));
    expect(count).toBeGreaterThan(0);
    await entry.click();
    await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(before - count));
    expect(await entry.getAttribute('data-hidden')).toBe('true');
    expect(await page.locator('[data-testid=visible-spots]').textContent()).toBe(
      `${number.format(before - count)} spots`,
    );
    await page.screenshot({ path: join(root, 'test-results', 'app-legend-hidden.png') });
    await page.locator(`[data-testid=legend-entry][data-class="${name}"]`).click();
    await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(before));
  });

  it('draws spots with WebGL2 when asked and the browser has it (software WebGL here)', async () => {
    const hasWebGl2 = await page.evaluate<boolean>("document.createElement('canvas').getContext('webgl2') !== null");
    const renderer = await page.locator('[data-testid=slide]').getAttribute('data-overlay-renderer');
    expect(renderer).toBe(hasWebGl2 ? 'webgl' : 'canvas');
    if (!hasWebGl2) console.log('app e2e: no WebGL2 in this Chromium, the overlay fell back to canvas 2D');
  });

  it('colours spots by a gene picked in the search box, with a colour bar of its limits', async () => {
    const [first] = sections;
    const stage = page.locator('[data-testid=slide]');
    const search = page.locator('[data-testid=gene-search]');
    await search.fill('erbb');
    const options = page.locator('[data-testid=gene-option]');
    await expect.poll(() => options.count()).toBeGreaterThan(1);
    // Prefix matches, the most expressed first: ERBB2 in a HER2-positive tumour.
    expect(await options.first().getAttribute('data-gene')).toBe('ERBB2');
    for (const option of await options.all())
      expect((await option.getAttribute('data-gene'))?.toLowerCase()).toContain('erb');
    await options.first().click();
    await expect.poll(() => stage.getAttribute('data-colour-gene')).toBe('ERBB2');
    expect(await stage.getAttribute('data-colour-by')).toBe('gene');
    expect(await page.locator('[data-testid=label-select]').inputValue()).not.toBe('');

    // Default limits: 0 and the 99th percentile of the log-normalised values over the spots on show.
    const spots = await studio.getSpots(first.id);
    const values = await studio.getGeneValues(first.id, 'ERBB2');
    const normalised = new Float32Array(new Uint8Array(Buffer.from(values.normalised, 'base64')).buffer);
    const p99 = percentile99(Array.from(normalised).filter((_, i) => spots.inTissue[i]));
    const bar = page.locator('[data-testid=colour-bar]');
    expect(Number(await bar.getAttribute('data-min'))).toBe(0);
    expect(Number(await bar.getAttribute('data-max'))).toBeCloseTo(p99, 5);
    expect(await bar.textContent()).toContain('ERBB2');
    expect(await page.locator('[data-testid=colour-bar-min]').textContent()).toBe('0');
    expect(await page.locator('[data-testid=colour-bar-max]').textContent()).toBe(`≥ ${Number(p99.toPrecision(3))}`);
    expect(Number(await stage.getAttribute('data-colour-ms'))).toBeLessThan(50);
    expect(await stage.getAttribute('data-spots-drawn')).toBe(String(first.spots));

    // The pixels: the most expressing spot is viridis yellow, a spot without ERBB2 viridis purple.
    await page.mouse.move(5, 5);
    await page.waitForTimeout(200);
    const box = (await stage.boundingBox())!;
    const view = await stage.getAttribute('data-view');
    const inTissue = spots.ids.flatMap((_, i) => (spots.inTissue[i] ? [i] : []));
    const top = inTissue.reduce((best, i) => (normalised[i] > normalised[best] ? i : best), inTissue[0]);
    const none = inTissue.find((i) => normalised[i] === 0)!;
    const shot = await page.screenshot({ path: join(root, 'test-results', 'app-gene.png') });
    // The demo (HER2ST B4) coloured by ERBB2, for the note.
    writeFileSync(join(root, 'test-results', 'app-b4-erbb2.png'), shot);
    const image = await pixels(shot);
    const at = (i: number) => {
      const p = onScreen(view, spots, i);
      return image.rgb(box.x + p.x, box.y + p.y);
    };
    const [r1, g1, b1] = at(top);
    expect(g1, `top spot ${at(top)}`).toBeGreaterThan(170);
    expect(b1).toBeLessThan(130);
    expect(r1).toBeGreaterThan(150);
    const [r0, g0, b0] = at(none);
    expect(g0, `zero spot ${at(none)}`).toBeLessThan(90);
    expect(b0).toBeGreaterThan(g0);
    expect(r0).toBeLessThan(150);
    const greens = greenPixels(image);
    expect(greens).toBeGreaterThan(100);

    // Another colour map repaints the same spots: magma has no green.
    await page.locator('[data-testid=colour-map]').selectOption('magma');
    await page.waitForTimeout(200);
    expect(greenPixels(await pixels(await page.screenshot()))).toBeLessThan(greens / 10);
    await page.locator('[data-testid=colour-map]').selectOption('viridis');
  });

  it("shows a spot's id, counts, labels and top genes on hover; a click selects it", async () => {
    const [first] = sections;
    const stage = page.locator('[data-testid=slide]');
    const spots = await studio.getSpots(first.id);
    const box = (await stage.boundingBox())!;
    const index = spots.inTissue.findIndex((inside, i) => inside && i > spots.ids.length / 3);
    const p = onScreen(await stage.getAttribute('data-view'), spots, index);
    await page.mouse.move(box.x + p.x, box.y + p.y);
    const tooltip = page.locator('[data-testid=spot-tooltip]');
    await expect.poll(() => tooltip.getAttribute('data-spot-id')).toBe(spots.ids[index]);
    const details = await studio.getSpotDetails(first.id, index);
    const text = (await tooltip.textContent()) ?? '';
    expect(text).toContain(spots.ids[index]);
    expect(text).toContain(`${number.format(details.totalCounts)} counts`);
    expect(text).toContain(`${number.format(details.nnz)} genes`);
    expect(text).toContain('ERBB2');
    const top = await tooltip.locator('[data-testid=top-genes] .symbol').allTextContents();
    expect(top).toEqual(details.topGenes.map((g) => g.symbol));
    expect(top).toHaveLength(Math.min(10, details.nnz));
    const squeezed = (t: string) => t.replace(/\s+/g, '');
    for (const [column, value] of Object.entries(details.labels)) {
      expect(squeezed(text)).toContain(squeezed(`${column}${value ?? 'no label'}`));
    }
    await page.screenshot({ path: join(root, 'test-results', 'app-hover.png') });

    await page.mouse.click(box.x + p.x, box.y + p.y);
    await expect.poll(() => stage.getAttribute('data-selected-spot')).toBe(spots.ids[index]);
    await expect
      .poll(() => page.locator('[data-testid=selected-spot]').getAttribute('data-spot-id'))
      .toBe(spots.ids[index]);
    // Off the spots, the tooltip goes.
    await page.mouse.move(box.x + 4, box.y + box.height / 2);
    await expect.poll(() => tooltip.count()).toBe(0);
    await page.waitForTimeout(200);
    await page.screenshot({ path: join(root, 'test-results', 'app-selected.png') });
  });

  it('shows a scale bar in microns that matches the zoom', async () => {
    const [first] = sections;
    const stage = page.locator('[data-testid=slide]');
    const bar = page.locator('[data-testid=scale-bar]');
    expect(await bar.isVisible()).toBe(true);
    expect((await bar.textContent())?.trim()).toMatch(/^[\d,]+ µm$/);
    const spots = await studio.getSpots(first.id);
    const [, , ax, ay] = (await stage.getAttribute('data-view'))!.split(',').map(Number);
    const pxPerMicron = Math.hypot(ax, ay) / spots.micronsPerPixel!;
    const microns = Number(await bar.getAttribute('data-microns'));
    expect(Number(await bar.getAttribute('data-px'))).toBeCloseTo(microns * pxPerMicron, 0);
    expect([50, 100, 200, 500, 1000, 2000, 5000]).toContain(microns);
    // Zoomed in 4x: a shorter length.
    await page.locator('button[aria-label="Zoom in"]').click();
    await page.locator('button[aria-label="Zoom in"]').click();
    await page.locator('button[aria-label="Zoom in"]').click();
    await expect.poll(async () => Number(await bar.getAttribute('data-microns'))).toBeLessThan(microns);
    await page.locator('button[aria-label="Fit to window"]').click();
    await page.waitForTimeout(800);
  });

  it('turns spots off and on, and draws them with the opacity chosen', async () => {
    const [first] = sections;
    const stage = page.locator('[data-testid=slide]');
    await page.locator('[data-testid=spots-on]').uncheck();
    await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe('0');
    await page.locator('[data-testid=spots-on]').check();
    await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(first.spots));
    await page.locator('[data-testid=opacity]').fill('0.3');
    await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(first.spots));
    await page.locator('[data-testid=opacity]').fill('0.8');
  });

  it.skipIf(!existsSync(second))('switches to the second section (skipped without ../shared/data)', async () => {
    const target = sections[1];
    await page.locator(`[data-testid=section][data-section-id="${target.id}"]`).click();
    await waitForSlide(target.id);
    const stage = page.locator('[data-testid=slide]');
    await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(await inTissue(target.id)));
    await page.screenshot({ path: join(root, 'test-results', 'app-second.png') });
    // The pathologist's regions, then ERBB2 over them.
    if (target.labels.pathologist) {
      await page.locator('[data-testid=label-select]').selectOption('pathologist');
      await expect
        .poll(() => page.locator('[data-testid=legend-entry]').count())
        .toBe(Object.keys(target.labels.pathologist).length);
      await page.waitForTimeout(200);
      await page.screenshot({ path: join(root, 'test-results', 'app-second-pathologist.png') });
    }
    await page.locator('[data-testid=gene-search]').fill('ERBB2');
    await page.locator('[data-testid=gene-option][data-gene=ERBB2]').click();
    await expect.poll(() => stage.getAttribute('data-colour-gene')).toBe('ERBB2');
    await page.mouse.move(5, 5);
    await page.waitForTimeout(200);
    await page.screenshot({ path: join(root, 'test-results', 'app-second-erbb2.png') });
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

  it('draws the same spots with canvas 2D, its own pick on software WebGL', async () => {
    const [first] = sections;
    const other = await browser.newPage({ viewport: { width: 1400, height: 860 } });
    other.on('pageerror', (error) => problems.push(error.message));
    try {
      await other.goto(server.url);
      const software = await other.evaluate<boolean>(`(() => {
        const gl = document.createElement('canvas').getContext('webgl2');
        const info = gl && gl.getExtension('WEBGL_debug_renderer_info');
        return !gl || /swiftshader|llvmpipe|software/i.test(String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER)));
      })()`);
      if (!software) await other.goto(`${server.url}&overlay=canvas`);
      const stage = other.locator(`[data-testid=slide][data-section-id="${first.id}"]`);
      await expect.poll(() => stage.getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
      expect(await stage.getAttribute('data-overlay-renderer')).toBe('canvas');
      await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(first.spots));
      await other.locator('[data-testid=gene-search]').fill('ERBB2');
      await other.locator('[data-testid=gene-option][data-gene=ERBB2]').click();
      await expect.poll(() => stage.getAttribute('data-colour-gene')).toBe('ERBB2');
      await other.waitForTimeout(200);
      const image = await pixels(
        await other.screenshot({ path: join(root, 'test-results', 'app-canvas-overlay.png') }),
      );
      expect(greenPixels(image)).toBeGreaterThan(100);
    } finally {
      await other.close();
    }
  });

  it.skipIf(!existsSync(second))(
    "colours the demo by the base model's predicted pathologist class, A1 as reference; then predicted ERBB2",
    async () => {
      const [first, a1] = sections;
      expect(a1.labels.pathologist).toBeDefined();
      const other = await browser.newPage({ viewport: { width: 1400, height: 860 } });
      other.on('pageerror', (error) => problems.push(error.message));
      try {
        await other.goto(`${server.url}&drawer=canvas&overlay=webgl`);
        const stage = other.locator(`[data-testid=slide][data-section-id="${first.id}"]`);
        await expect.poll(() => stage.getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
        const model = other.locator('[data-testid=prediction-model]');
        await expect.poll(() => model.locator('option').count()).toBeGreaterThan(1);
        await model.selectOption('base');
        await other.locator('[data-testid=label-select]').selectOption({ label: 'Predicted class (pathologist)' });
        expect(await stage.getAttribute('data-colour-by')).toBe('predicted-class');
        await expect.poll(() => stage.getAttribute('data-predicting')).toBe('true');
        await expect.poll(() => stage.getAttribute('data-predicting'), { timeout: 120_000 }).toBe('false');
        const legend = other.locator('[data-testid=legend]');
        await expect.poll(() => legend.count()).toBe(1);
        expect(await legend.textContent()).toContain('Predicted pathologist');
        const entries = other.locator('[data-testid=legend-entry]');
        const measured = Object.keys(a1.labels.pathologist);
        let total = 0;
        for (const entry of await entries.all()) {
          expect(measured).toContain(await entry.getAttribute('data-class'));
          total += Number(await entry.getAttribute('data-count'));
        }
        expect(total).toBe(first.spots);
        await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(first.spots));
        // A1 was the reference, not the demo itself: no resubstitution warning.
        expect(await other.locator('[data-testid=prediction-status]').count()).toBe(0);
        await other.mouse.move(5, 5);
        await other.waitForTimeout(300);
        mkdirSync(join(root, 'test-results'), { recursive: true });
        await other.screenshot({ path: join(root, 'test-results', 'app-predicted.png') });

        await other.locator('[data-testid=gene-search]').fill('ERBB2');
        await other.locator('[data-testid=gene-option][data-gene=ERBB2]').click();
        await expect.poll(() => stage.getAttribute('data-colour-gene')).toBe('ERBB2');
        await other.locator('[data-testid=label-select]').selectOption({ label: 'Predicted ERBB2' });
        const panel = other.locator('[data-testid=prediction-gene-panel]');
        await expect.poll(() => panel.count(), { timeout: 120_000 }).toBe(1);
        await other.locator('[data-testid=prediction-view-difference]').click();
        expect(await panel.textContent()).toContain('predicted − measured');
        const bar = panel.locator('[data-testid=colour-bar]');
        expect(Number(await bar.getAttribute('data-min'))).toBe(-Number(await bar.getAttribute('data-max')));
        await expect.poll(() => stage.getAttribute('data-spots-drawn')).toBe(String(first.spots));
        await other.waitForTimeout(300);
        await other.screenshot({ path: join(root, 'test-results', 'app-predicted-erbb2-difference.png') });
      } finally {
        await other.close();
      }
    },
    240_000,
  );

  it('ran without page errors or CSP violations', () => {
    // The 400 answers to the bad paths above are expected console noise from fetch.
    const unexpected = problems.filter((text) => !/status of 400/.test(text));
    expect(unexpected).toEqual([]);
  });
});

describe.skipIf(skipReason !== null)('Annotation in Chromium (browser mode, a temporary project)', () => {
  let studio: Studio;
  let server: BrowserServer;
  let browser: Browser;
  let page: Page;
  let scratch: string;
  let id: string;
  let spots: SectionSpots;
  const problems: string[] = [];
  const CANCER = 'invasive cancer';
  const IMMUNE = 'immune infiltrate';

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'delst-e2e-annotate-'));
    studio = new Studio({ cacheDir: e2eCacheDir(), projectDir: join(scratch, 'project') });
    [{ id }] = (await studio.openPath(demo)).opened;
    spots = await studio.getSpots(id);
    ({ server, browser, page } = await launchApp(studio, problems, { acceptDownloads: true }));
  });

  afterAll(() => closeApp({ browser, server, studio }, scratch));

  const stage = () => page.locator('[data-testid=slide]');

  /** A spot's centre in page coordinates. */
  async function spotOnPage(index: number): Promise<{ x: number; y: number }> {
    const box = (await stage().boundingBox())!;
    const p = onScreen(await stage().getAttribute('data-view'), spots, index);
    return { x: box.x + p.x, y: box.y + p.y };
  }

  async function legendCount(name: string): Promise<number> {
    const entry = page.locator(`[data-testid=legend-entry][data-class="${name}"]`);
    return (await entry.count()) === 0 ? 0 : Number(await entry.getAttribute('data-count'));
  }

  /** Labels by class name, as the core has them now. */
  async function labelled(name: string): Promise<number[]> {
    const { labels } = await studio.getAnnotations(id);
    return labels.flatMap((label, i) => (label === name ? [i] : []));
  }

  async function pickClass(name: string): Promise<void> {
    await page.locator(`[data-testid=class-item][data-class-name="${name}"] [data-testid=class-pick]`).click();
  }

  async function settled(): Promise<void> {
    await expect.poll(() => stage().getAttribute('data-annotate-busy')).toBe('false');
  }

  /** In-tissue spots near the middle of the tissue, nearest first. */
  function middleSpots(): number[] {
    const inside = spots.ids.map((_, i) => i).filter((i) => spots.inTissue[i]);
    const cx = inside.reduce((s, i) => s + spots.x[i], 0) / inside.length;
    const cy = inside.reduce((s, i) => s + spots.y[i], 0) / inside.length;
    return inside.sort(
      (a, b) => Math.hypot(spots.x[a] - cx, spots.y[a] - cy) - Math.hypot(spots.x[b] - cx, spots.y[b] - cy),
    );
  }

  it('enters annotate mode: the palette shows, spots are coloured by the annotations column', async () => {
    await expect.poll(() => stage().getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
    await expect.poll(() => stage().getAttribute('data-spots-drawn')).not.toBe(null);
    await page.locator('[data-testid=annotate-toggle]').click();
    expect(await stage().getAttribute('data-annotating')).toBe('true');
    expect(await page.locator('[data-testid=label-select]').inputValue()).toBe('annotations');
    const items = page.locator('[data-testid=class-item]');
    // The HER2ST classes and the erase pseudo-class.
    await expect.poll(() => items.count()).toBe(8);
    expect(await page.locator('[data-testid=legend-entry]').count()).toBe(1);
  });

  it('labels a clicked spot; a brush stroke labels more; undo takes the stroke back', async () => {
    const order = middleSpots();
    const first = order[0];
    await pickClass(CANCER);
    await page.locator('[data-testid=tool-click]').click();
    const p = await spotOnPage(first);
    await page.mouse.click(p.x, p.y);
    await expect.poll(() => legendCount(CANCER)).toBe(1);
    expect(await labelled(CANCER)).toEqual([first]);

    // A brush stroke from that spot 80 px to the right: one change, several spots.
    await page.locator('[data-testid=tool-brush]').click();
    await page.mouse.move(p.x, p.y);
    await page.mouse.down();
    await page.mouse.move(p.x + 80, p.y, { steps: 12 });
    await page.mouse.up();
    await settled();
    await expect.poll(() => legendCount(CANCER)).toBeGreaterThan(2);
    const afterBrush = await labelled(CANCER);
    expect(await legendCount(CANCER)).toBe(afterBrush.length);
    // The view did not pan under the brush.
    expect((await spotOnPage(first)).x).toBeCloseTo(p.x, 0);

    await page.locator('[data-testid=undo]').click();
    await expect.poll(() => legendCount(CANCER)).toBe(1);
    expect(await labelled(CANCER)).toEqual([first]);
  });

  it('labels the spots inside a lasso', async () => {
    const order = middleSpots();
    await pickClass(IMMUNE);
    await page.locator('[data-testid=tool-lasso]').click();
    // A circle of 70 px around a spot some way from the first one.
    const centre = await spotOnPage(order[40]);
    const radius = 70;
    const ring = Array.from({ length: 33 }, (_, k) => {
      const a = (k / 32) * 2 * Math.PI;
      return { x: centre.x + radius * Math.cos(a), y: centre.y + radius * Math.sin(a) };
    });
    await page.mouse.move(ring[0].x, ring[0].y);
    await page.mouse.down();
    for (const q of ring.slice(1)) await page.mouse.move(q.x, q.y);
    await page.mouse.up();
    await settled();
    const inside: number[] = [];
    const outside: number[] = [];
    for (let i = 0; i < spots.ids.length; i++) {
      if (!spots.inTissue[i]) continue;
      const q = await spotOnPage(i);
      const d = Math.hypot(q.x - centre.x, q.y - centre.y);
      if (d < radius - 3) inside.push(i);
      else if (d > radius + 3) outside.push(i);
    }
    expect(inside.length).toBeGreaterThan(3);
    await expect.poll(async () => (await labelled(IMMUNE)).length).toBeGreaterThanOrEqual(inside.length);
    const got = new Set(await labelled(IMMUNE));
    for (const i of inside) expect(got.has(i), spots.ids[i]).toBe(true);
    for (const i of outside) expect(got.has(i), spots.ids[i]).toBe(false);
    expect(await legendCount(IMMUNE)).toBe(got.size);
  });

  it('keeps a polygon as a region, drawn as an outline', async () => {
    await pickClass('breast glands');
    await page.locator('[data-testid=tool-polygon]').click();
    const box = (await stage().boundingBox())!;
    const corners = [
      { x: box.x + box.width * 0.7, y: box.y + box.height * 0.3 },
      { x: box.x + box.width * 0.78, y: box.y + box.height * 0.3 },
      { x: box.x + box.width * 0.74, y: box.y + box.height * 0.42 },
    ];
    for (const c of corners) {
      await page.mouse.click(c.x, c.y);
      await page.waitForTimeout(350);
    }
    await page.keyboard.press('Enter');
    await settled();
    await expect.poll(() => page.locator('[data-testid=region]').count()).toBe(1);
    expect((await studio.getAnnotations(id)).regions).toHaveLength(1);
    await page.locator('[data-testid=tool-click]').click();
    await page.mouse.move(5, 5);
    await page.waitForTimeout(300);
    mkdirSync(join(root, 'test-results'), { recursive: true });
    await page.screenshot({ path: join(root, 'test-results', 'app-annotate.png') });
  });

  it('exports GeoJSON with the labelled spots, for download', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('[data-testid=export-geojson]').click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/-annotations\.geojson$/);
    const text = readFileSync(await download.path(), 'utf8');
    const collection = JSON.parse(text) as {
      features: { properties: { objectType: string; name?: string; classification?: { name: string } } }[];
    };
    const byName = new Map(
      collection.features
        .filter((f) => f.properties.objectType === 'detection')
        .map((f) => [f.properties.name, f.properties.classification?.name ?? null]),
    );
    for (const name of [CANCER, IMMUNE]) {
      for (const i of await labelled(name)) expect(byName.get(spots.ids[i])).toBe(name);
    }
    expect(collection.features.filter((f) => f.properties.objectType === 'annotation')).toHaveLength(1);
  });

  it('shows the labels again after a reload; Ctrl+Z undoes the last change', async () => {
    const cancer = (await labelled(CANCER)).length;
    const immune = (await labelled(IMMUNE)).length;
    await page.reload();
    await expect.poll(() => stage().getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
    await page.locator('[data-testid=label-select]').selectOption('annotations');
    await expect.poll(() => legendCount(CANCER)).toBe(cancer);
    expect(await legendCount(IMMUNE)).toBe(immune);
    await page.locator('[data-testid=annotate-toggle]').click();
    await expect.poll(() => page.locator('[data-testid=region]').count()).toBe(1);
    await page.mouse.move(5, 5);
    await page.keyboard.press('Control+z');
    await expect.poll(() => page.locator('[data-testid=region]').count()).toBe(0);
    await page.keyboard.press('Control+Shift+z');
    await expect.poll(() => page.locator('[data-testid=region]').count()).toBe(1);
  });

  it('ran without page errors', () => {
    expect(problems).toEqual([]);
  });
});

describe.skipIf(skipReason !== null || !existsSync(second))(
  'Slide library in Chromium: compare side by side, close, reopen from Recent, a bare image',
  () => {
    let studio: Studio;
    let server: BrowserServer;
    let browser: Browser;
    let page: Page;
    let scratch: string;
    let demoId: string;
    let a1: SectionSummary;
    const problems: string[] = [];

    beforeAll(async () => {
      scratch = mkdtempSync(join(tmpdir(), 'delst-e2e-library-'));
      studio = new Studio({ cacheDir: e2eCacheDir(), projectDir: join(scratch, 'project') });
      [a1] = (await studio.openPath(second)).opened;
      [{ id: demoId }] = (await studio.openPath(demo)).opened;
      ({ server, browser, page } = await launchApp(studio, problems));
    });

    afterAll(() => closeApp({ browser, server, studio }, scratch));

    const stageOf = (id: string) => page.locator(`[data-testid=slide][data-section-id="${id}"]`);

    async function loaded(id: string): Promise<void> {
      await expect.poll(() => stageOf(id).getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
    }

    /** Screen pixels per image width: equal on both sides when their zooms are linked. */
    async function imageWidthOnScreen(id: string, width: number): Promise<number> {
      const [, , ax, ay] = (await stageOf(id).getAttribute('data-view'))!.split(',').map(Number);
      return Math.hypot(ax, ay) * width;
    }

    it('shows two sections side by side, each loading its own slide', async () => {
      await loaded(a1.id);
      await page.locator('[data-testid=compare-toggle]').click();
      await expect.poll(() => page.locator('[data-testid=slide]').count()).toBe(2);
      expect(await page.locator('[data-testid=compare-select]').inputValue()).toBe(demoId);
      await loaded(a1.id);
      await loaded(demoId);
      const left = (await page.locator('[data-testid=pane-left]').boundingBox())!;
      const right = (await page.locator('[data-testid=pane-right]').boundingBox())!;
      expect(right.x).toBeGreaterThan(left.x + left.width - 2);
      expect(Math.abs(left.width - right.width)).toBeLessThan(2);
      // Each view colours on its own: a label colouring on the left leaves the right in outlines.
      const [column] = Object.keys(a1.labels).filter((c) => Object.keys(a1.labels[c]).length > 1);
      await stageOf(a1.id)
        .locator('xpath=ancestor::section[1]')
        .locator('[data-testid=label-select]')
        .selectOption(column);
      await expect.poll(() => stageOf(a1.id).getAttribute('data-colour-by')).toBe('label');
      expect(await stageOf(demoId).getAttribute('data-colour-by')).toBe('none');
      // Both slides are on screen: tissue (not one flat colour) in each half of a screenshot.
      await page.locator('[data-testid=pane-left]').getByRole('button', { name: 'Fit to window' }).click();
      await page.mouse.move(5, 5);
      await page.waitForTimeout(600);
      await page.waitForTimeout(300);
      mkdirSync(join(root, 'test-results'), { recursive: true });
      const png = await page.screenshot({ path: join(root, 'test-results', 'app-compare.png') });
      for (const box of [left, right]) {
        const region = await sharp(png)
          .extract({
            left: Math.round(box.x + box.width * 0.25),
            top: Math.round(box.y + box.height * 0.3),
            width: Math.round(box.width * 0.5),
            height: Math.round(box.height * 0.4),
          })
          .stats();
        expect(Math.max(...region.channels.slice(0, 3).map((c) => c.stdev))).toBeGreaterThan(10);
      }
    });

    it('links the views: a zoom on the left applies the same relative zoom on the right', async () => {
      const demoSummary = (await studio.listSections()).find((s) => s.id === demoId)!;
      await page.locator('[data-testid=link-views]').check();
      const leftPane = page.locator('[data-testid=pane-left]');
      for (let i = 0; i < 2; i++) await leftPane.getByRole('button', { name: 'Zoom in' }).click();
      await page.waitForTimeout(1200); // the zoom animation (0.5 s) and the views following it
      const left = await imageWidthOnScreen(a1.id, a1.image!.width);
      const right = await imageWidthOnScreen(demoId, demoSummary.image!.width);
      expect(left).toBeGreaterThan(0);
      expect(Math.abs(left - right) / left).toBeLessThan(0.02);
      // And back the other way: the right drives the left.
      await page.locator('[data-testid=pane-right]').getByRole('button', { name: 'Zoom out' }).click();
      await page.waitForTimeout(1200);
      const left2 = await imageWidthOnScreen(a1.id, a1.image!.width);
      const right2 = await imageWidthOnScreen(demoId, demoSummary.image!.width);
      expect(left2).toBeLessThan(left);
      expect(Math.abs(left2 - right2) / left2).toBeLessThan(0.02);
      await page.locator('[data-testid=compare-toggle]').click();
      await expect.poll(() => page.locator('[data-testid=slide]').count()).toBe(1);
    });

    it('closes a section, keeps it under Recent, and reopens it from there', async () => {
      await page.locator(`[data-testid=close-section][data-section-id="${a1.id}"]`).click();
      await expect.poll(() => page.locator('[data-testid=section]').count()).toBe(1);
      expect((await studio.listSections()).map((s) => s.id)).toEqual([demoId]);
      const item = page.locator(`[data-testid=recent-item][data-path="${second}"]`);
      await expect.poll(() => item.getAttribute('data-open')).toBe('false');
      await item.click();
      await expect.poll(() => page.locator('[data-testid=section]').count()).toBe(2);
      const reopened = (await studio.listSections()).find((s) => s.source === a1.source)!;
      expect(reopened.id).not.toBe(a1.id);
      await loaded(reopened.id);
      await expect.poll(() => item.getAttribute('data-open')).toBe('true');
      // An open one is selected, not opened twice.
      await page.locator(`[data-testid=section][data-section-id="${demoId}"]`).click();
      await loaded(demoId);
      await page.locator(`[data-testid=recent-item][data-path="${demo}"]`).click();
      await page.locator(`[data-testid=recent-item][data-path="${second}"]`).click();
      await loaded(reopened.id);
      expect(await page.locator('[data-testid=section]').count()).toBe(2);
    });

    it('opens a bare H&E image as an image-only section: the slide, no spots', async () => {
      const file = join(scratch, 'bare-he.png');
      await sharp(join(root, 'test-results', 'app-compare.png'))
        .resize(600)
        .png()
        .toFile(file);
      await page.locator('[data-testid=open-path]').fill(file);
      await page.locator('[data-testid=open-button]').click();
      const image = (await studio.listSections()).find((s) => s.source === file);
      await expect.poll(async () => (await studio.listSections()).some((s) => s.source === file)).toBe(true);
      const id = image?.id ?? (await studio.listSections()).find((s) => s.source === file)!.id;
      await loaded(id);
      expect(await page.locator('[data-testid=image-only]').count()).toBe(1);
      expect(await page.locator('[data-testid=label-select]').count()).toBe(0);
      expect(await page.locator('[data-testid=legend]').count()).toBe(0);
      expect(await stageOf(id).getAttribute('data-spots-drawn')).not.toMatch(/^[1-9]/);
      expect((await studio.listRecent())[0]).toMatchObject({ path: file, format: 'image' });
      await page.mouse.move(5, 5);
      await page.screenshot({ path: join(root, 'test-results', 'app-image-only.png') });
    });

    it('ran without page errors', () => {
      expect(problems).toEqual([]);
    });
  },
);

describe.skipIf(skipReason !== null || !existsSync(second))(
  'HER2ST A1 in Chromium, in a fresh project: open, ERBB2, lasso, reload, export, import elsewhere, upload',
  () => {
    let studio: Studio;
    let server: BrowserServer;
    let browser: Browser;
    let page: Page;
    let scratch: string;
    let id: string;
    let spots: SectionSpots;
    let exported: string;
    let inside: { [name: string]: number[] } = {};
    const problems: string[] = [];
    const CANCER = 'invasive cancer';
    const IMMUNE = 'immune infiltrate';
    let cacheDir: string;

    const newPage = (url: string) => openApp(browser, url, problems, { acceptDownloads: true });

    beforeAll(async () => {
      scratch = mkdtempSync(join(tmpdir(), 'delst-e2e-a1-'));
      cacheDir = e2eCacheDir();
      // Nothing open at the start: A1 is opened through the path box.
      studio = new Studio({ cacheDir, projectDir: join(scratch, 'project-a') });
      ({ server, browser, page } = await launchApp(studio, problems, { acceptDownloads: true }));
    });

    afterAll(() => closeApp({ browser, server, studio }, scratch));

    const stage = (p: Page = page) => p.locator('[data-testid=slide]');

    async function loaded(p: Page = page): Promise<void> {
      await expect.poll(() => stage(p).getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
    }

    async function spotOnPage(index: number, p: Page = page): Promise<{ x: number; y: number }> {
      const box = (await stage(p).boundingBox())!;
      const q = onScreen(await stage(p).getAttribute('data-view'), spots, index);
      return { x: box.x + q.x, y: box.y + q.y };
    }

    async function quietShot(p: Page = page, path?: string): Promise<Buffer> {
      await p.mouse.move(5, 5);
      await p.waitForTimeout(300);
      return p.screenshot(path ? { path } : {});
    }

    async function legendCount(name: string, p: Page = page): Promise<number> {
      const entry = p.locator(`[data-testid=legend-entry][data-class="${name}"]`);
      return (await entry.count()) === 0 ? 0 : Number(await entry.getAttribute('data-count'));
    }

    const tissue = () => spots.ids.flatMap((_, i) => (spots.inTissue[i] ? [i] : []));

    it('opens A1 from the path box: the slide and its spots show in the pixels', async () => {
      await page.locator('[data-testid=open-path]').fill(second);
      await page.locator('[data-testid=open-button]').click();
      await expect.poll(() => page.locator('[data-testid=section]').count()).toBe(1);
      [{ id }] = await studio.listSections();
      spots = await studio.getSpots(id);
      await loaded();
      const count = tissue().length;
      expect(count).toBe(346);
      await expect.poll(() => stage().getAttribute('data-spots-drawn')).toBe(String(count));
      const box = (await stage().boundingBox())!;
      const withSpots = await quietShot();
      // The slide: tissue, not one flat colour, in the middle of the view.
      const middle = await sharp(withSpots)
        .extract({
          left: Math.round(box.x + box.width * 0.3),
          top: Math.round(box.y + box.height * 0.3),
          width: Math.round(box.width * 0.4),
          height: Math.round(box.height * 0.4),
        })
        .stats();
      expect(Math.max(...middle.channels.slice(0, 3).map((c) => c.stdev))).toBeGreaterThan(10);
      // The spots: turned off, the pixels around most spot centres change; far from every spot, none do.
      await page.locator('[data-testid=spots-on]').uncheck();
      await expect.poll(() => stage().getAttribute('data-spots-drawn')).toBe('0');
      const without = await pixels(await quietShot());
      const on = await pixels(withSpots);
      await page.locator('[data-testid=spots-on]').check();
      await expect.poll(() => stage().getAttribute('data-spots-drawn')).toBe(String(count));
      const [, , ax, ay] = (await stage().getAttribute('data-view'))!.split(',').map(Number);
      const radius = Math.max(2, (Math.hypot(ax, ay) * spots.diameter!) / 2 + 1);
      let changed = 0;
      for (const i of tissue()) {
        const c = await spotOnPage(i);
        let diff = 0;
        for (let dy = -radius; dy <= radius; dy++) {
          for (let dx = -radius; dx <= radius; dx++) {
            const a = on.rgb(c.x + dx, c.y + dy);
            const b = without.rgb(c.x + dx, c.y + dy);
            diff = Math.max(diff, Math.abs(a[0] - b[0]) + Math.abs(a[1] - b[1]) + Math.abs(a[2] - b[2]));
          }
        }
        if (diff > 40) changed++;
      }
      expect(changed / count).toBeGreaterThan(0.9);
    });

    it('colours A1 by ERBB2: the spot colours change to viridis', async () => {
      const before = await pixels(await quietShot());
      await page.locator('[data-testid=gene-search]').fill('ERBB2');
      await page.locator('[data-testid=gene-option][data-gene=ERBB2]').click();
      await expect.poll(() => stage().getAttribute('data-colour-gene')).toBe('ERBB2');
      const after = await pixels(await quietShot());
      const values = await studio.getGeneValues(id, 'ERBB2');
      const normalised = new Float32Array(new Uint8Array(Buffer.from(values.normalised, 'base64')).buffer);
      const top = tissue().reduce((best, i) => (normalised[i] > normalised[best] ? i : best), tissue()[0]);
      const [r, g, b] = after.rgb((await spotOnPage(top)).x, (await spotOnPage(top)).y);
      expect(g, `top ERBB2 spot ${[r, g, b]}`).toBeGreaterThan(170);
      expect(r).toBeGreaterThan(150);
      expect(b).toBeLessThan(130);
      let changed = 0;
      for (const i of tissue()) {
        const c = await spotOnPage(i);
        const [r0, g0, b0] = before.rgb(c.x, c.y);
        const [r1, g1, b1] = after.rgb(c.x, c.y);
        if (Math.abs(r1 - r0) + Math.abs(g1 - g0) + Math.abs(b1 - b0) > 40) changed++;
      }
      expect(changed / tissue().length).toBeGreaterThan(0.8);
      expect(greenPixels(after)).toBeGreaterThan(50);
    });

    it('labels spots with two lassos in annotate mode', async () => {
      await page.locator('[data-testid=annotate-toggle]').click();
      expect(await page.locator('[data-testid=label-select]').inputValue()).toBe('annotations');
      const order = tissue();
      const cx = order.reduce((s, i) => s + spots.x[i], 0) / order.length;
      const cy = order.reduce((s, i) => s + spots.y[i], 0) / order.length;
      order.sort((a, b) => Math.hypot(spots.x[a] - cx, spots.y[a] - cy) - Math.hypot(spots.x[b] - cx, spots.y[b] - cy));
      const [, , ax, ay] = (await stage().getAttribute('data-view'))!.split(',').map(Number);
      // Legacy ST spots are 100 µm wide and 200 µm apart: a ring 2.5 pitches wide takes a few dozen.
      const pitch = 2 * Math.hypot(ax, ay) * spots.diameter!;
      const radius = Math.max(40, pitch * 2.5);
      inside = {};
      for (const [name, spot] of [
        [CANCER, order[0]],
        [IMMUNE, order[Math.floor(order.length / 2)]],
      ] as const) {
        await page.locator(`[data-testid=class-item][data-class-name="${name}"] [data-testid=class-pick]`).click();
        await page.locator('[data-testid=tool-lasso]').click();
        const centre = await spotOnPage(spot);
        const ring = Array.from({ length: 33 }, (_, k) => {
          const a = (k / 32) * 2 * Math.PI;
          return { x: centre.x + radius * Math.cos(a), y: centre.y + radius * Math.sin(a) };
        });
        await page.mouse.move(ring[0].x, ring[0].y);
        await page.mouse.down();
        for (const q of ring.slice(1)) await page.mouse.move(q.x, q.y);
        await page.mouse.up();
        await expect.poll(() => stage().getAttribute('data-annotate-busy')).toBe('false');
        inside[name] = [];
        for (const i of tissue()) {
          const q = await spotOnPage(i);
          if (Math.hypot(q.x - centre.x, q.y - centre.y) < radius - 3) inside[name].push(i);
        }
        expect(inside[name].length).toBeGreaterThan(3);
        await expect.poll(() => legendCount(name)).toBeGreaterThanOrEqual(inside[name].length);
      }
      const { labels } = await studio.getAnnotations(id);
      for (const name of [CANCER, IMMUNE]) for (const i of inside[name]) expect(labels[i], spots.ids[i]).toBe(name);
    });

    it('shows the labels again after a reload, in the legend and the pixels', async () => {
      const { labels } = await studio.getAnnotations(id);
      const counts = (name: string) => labels.filter((l) => l === name).length;
      await page.reload();
      await loaded();
      await page.locator('[data-testid=label-select]').selectOption('annotations');
      await expect.poll(() => legendCount(CANCER)).toBe(counts(CANCER));
      expect(await legendCount(IMMUNE)).toBe(counts(IMMUNE));
      mkdirSync(join(root, 'test-results'), { recursive: true });
      const image = await pixels(await quietShot(page, join(root, 'test-results', 'app-a1-annotated.png')));
      // Each labelled spot is nearer its class colour (red, blue) than the other one.
      const red = [0xd6, 0x27, 0x28];
      const blue = [0x1f, 0x77, 0xb4];
      const distance = (a: number[], b: number[]) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
      let right = 0;
      let all = 0;
      for (const [i, label] of labels.entries()) {
        if (!spots.inTissue[i] || (label !== CANCER && label !== IMMUNE)) continue;
        const c = await spotOnPage(i);
        const rgb = image.rgb(c.x, c.y);
        const [own, other] = label === CANCER ? [red, blue] : [blue, red];
        if (distance(rgb, own) < distance(rgb, other)) right++;
        all++;
      }
      expect(right / all).toBeGreaterThan(0.9);
    });

    it('exports GeoJSON through the Export button', async () => {
      await page.locator('[data-testid=annotate-toggle]').click();
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.locator('[data-testid=export-geojson]').click(),
      ]);
      expect(download.suggestedFilename()).toMatch(/-annotations\.geojson$/);
      exported = join(scratch, download.suggestedFilename());
      await download.saveAs(exported);
      const collection = JSON.parse(readFileSync(exported, 'utf8')) as {
        features: { properties: { objectType: string; name?: string; classification?: { name: string } } }[];
      };
      const { labels } = await studio.getAnnotations(id);
      const byName = new Map(
        collection.features
          .filter((f) => f.properties.objectType === 'detection')
          .map((f) => [f.properties.name, f.properties.classification?.name ?? null]),
      );
      for (const [i, label] of labels.entries()) if (label) expect(byName.get(spots.ids[i])).toBe(label);
    });

    it('refuses API requests without the token', async () => {
      const call = (headers: Record<string, string>) =>
        fetch(`http://127.0.0.1:${server.port}/api/listSections`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: '[]',
        });
      expect((await call({})).status).toBe(403);
      expect((await call({ 'x-delst-token': 'not-the-token' })).status).toBe(403);
      // The page's cookie is not enough for the API either.
      const cookies = await page.context().cookies();
      const cookie = cookies.map((c) => `${c.name}=${c.value}`).join('; ');
      expect(cookie).toContain('delst_token_');
      expect((await call({ cookie })).status).toBe(403);
      expect((await call({ 'x-delst-token': server.token })).status).toBe(200);
    });

    describe('a second project', () => {
      let other: Studio;
      let otherServer: BrowserServer;
      let otherPage: Page;

      beforeAll(async () => {
        other = new Studio({ cacheDir, projectDir: join(scratch, 'project-b') });
        otherServer = await startBrowserServer({ studio: other, rendererDir });
        otherPage = await newPage(otherServer.url);
      });

      afterAll(async () => {
        await otherPage?.close();
        await otherServer?.close();
        other?.close();
      });

      it('imports the exported GeoJSON through the Import button: the same spots, the same classes', async () => {
        await otherPage.locator('[data-testid=open-path]').fill(second);
        await otherPage.locator('[data-testid=open-button]').click();
        await expect.poll(() => otherPage.locator('[data-testid=section]').count(), { timeout: 30_000 }).toBe(1);
        const [{ id: otherId }] = await other.listSections();
        await loaded(otherPage);
        expect((await other.getAnnotations(otherId)).labels.every((l) => l === null)).toBe(true);
        await otherPage.locator('[data-testid=annotate-toggle]').click();
        await otherPage.locator('[data-testid=import-file]').setInputFiles(exported);
        const want = (await studio.getAnnotations(id)).labels;
        await expect.poll(async () => (await other.getAnnotations(otherId)).labels, { timeout: 30_000 }).toEqual(want);
        for (const name of [CANCER, IMMUNE]) {
          await expect
            .poll(() => legendCount(name, otherPage))
            .toBe(want.filter((l, i) => l === name && spots.inTissue[i]).length);
        }
        await quietShot(otherPage, join(root, 'test-results', 'app-a1-imported.png'));
      });

      it('uploads the A1 folder through the Upload button: a new section opens from the project', async () => {
        expect(await otherPage.locator('[data-testid=upload]').count()).toBe(1);
        // Playwright sends a folder to an <input webkitdirectory> with webkitRelativePath set, as a browser does.
        await otherPage.locator('[data-testid=upload-folder]').setInputFiles(second);
        await expect.poll(() => otherPage.locator('[data-testid=section]').count(), { timeout: 60_000 }).toBe(2);
        const uploaded = (await other.listSections()).find((s) => s.source.includes(join('project-b', 'uploads')))!;
        expect(uploaded).toBeTruthy();
        expect(uploaded.spots).toBe(346);
        expect(uploaded.source.startsWith(join(scratch, 'project-b', 'uploads', 'A1-'))).toBe(true);
        const stageOf = otherPage.locator(`[data-testid=slide][data-section-id="${uploaded.id}"]`);
        await expect.poll(() => stageOf.getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
        await expect.poll(() => stageOf.getAttribute('data-spots-drawn')).toBe('346');
        expect(await otherPage.locator('[data-testid=open-error]').count()).toBe(0);
      });
    });

    it('ran without page errors', () => {
      expect(problems).toEqual([]);
    });
  },
);

describe.skipIf(skipReason !== null)('Training in Chromium (browser mode, a temporary project)', () => {
  let studio: Studio;
  let server: BrowserServer;
  let browser: Browser;
  let page: Page;
  let scratch: string;
  let id: string;
  const problems: string[] = [];

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'delst-e2e-train-'));
    studio = new Studio({ cacheDir: e2eCacheDir(), projectDir: join(scratch, 'project') });
    [{ id }] = (await studio.openPath(demo)).opened;
    ({ server, browser, page } = await launchApp(studio, problems));
  });

  afterAll(() => closeApp({ browser, server, studio }, scratch));

  it('trains a Quick model on the demo with live progress; it lands in the model library', async () => {
    await page.locator('[data-testid=train-toggle]').click();
    const panel = page.locator('[data-testid=train-panel]');
    await expect.poll(() => panel.count()).toBe(1);
    // The backend, said plainly.
    await expect
      .poll(() => page.locator('[data-testid=train-backend]').textContent(), { timeout: 30_000 })
      .toMatch(/Runs on: (CPU|CUDA GPU) via/);
    // The bundled base model is in the library from the start.
    await expect.poll(() => page.locator('[data-testid=model][data-model-id=base]').count()).toBe(1);
    const start = page.locator('[data-testid=train-start]');
    expect(await start.isDisabled()).toBe(true);
    await page.locator(`[data-testid=train-section][data-section-id="${id}"]`).check();
    await page.locator('[data-testid=preset-quick]').click();
    await page.locator('[data-testid=train-epochs]').fill('2');
    await page.locator('[data-testid=train-name]').fill('Demo heads');
    await start.click();
    await expect.poll(() => panel.getAttribute('data-state'), { timeout: 10_000 }).toMatch(/running|done/);
    await expect.poll(() => page.locator('[data-testid=train-state]').textContent(), { timeout: 60_000 }).toBe('done');
    expect(await page.locator('[data-testid=train-progress]').textContent()).toMatch(/epoch 2\/2 .* spots\/s/);
    expect(Number(await page.locator('[data-testid=loss-chart]').getAttribute('data-points'))).toBeGreaterThan(1);
    expect(await page.locator('[data-testid=loss-chart] path').count()).toBe(4);
    const model = (await studio.listModels()).find((m) => m.name === 'Demo heads')!;
    expect(model.epochs).toBe(2);
    const entry = page.locator(`[data-testid=model][data-model-id="${model.id}"]`);
    await expect.poll(() => entry.count(), { timeout: 10_000 }).toBe(1);
    expect(await entry.locator('[data-testid=model-name]').textContent()).toBe('Demo heads');
    const meta = await entry.locator('[data-testid=model-meta]').textContent();
    expect(meta).toContain(`delst · ${model.data[0]} · 2 epochs · loss ${model.finalLoss!.toFixed(3)}`);
    mkdirSync(join(root, 'test-results'), { recursive: true });
    await page.screenshot({ path: join(root, 'test-results', 'app-train.png') });
  });

  it('ran without page errors', () => {
    expect(problems).toEqual([]);
  });
});

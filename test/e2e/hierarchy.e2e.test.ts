// End to end (issue 5): similar tissue and the Poincaré-disk view in headless Chromium against the real core, on the
// bundled demo (HER2ST B4) and HER2ST A1 with the bundled base model. Screenshots go to /tmp/shots/. Needs
// `npm run build` and Debian's chromium; skips with the reason otherwise.

import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SectionSpots, SectionSummary } from '../../core/api/api.js';
import { Studio } from '../../core/api/studio.js';
import { demoPath, packageRoot } from '../../core/resources.js';
import { startBrowserServer, type BrowserServer } from '../../server/browser-server.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../../bench/chromium.js';
import { closeApp, onScreen, pixels } from './helpers.js';

const root = packageRoot();
const rendererDir = join(root, 'dist', 'renderer');
const A1 = resolve(root, '..', 'shared', 'data', 'her2st', 'A1');
const SHOTS = '/tmp/shots';

const skipReason = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`
  : !existsSync(join(rendererDir, 'index.html'))
    ? 'renderer not built (run npm run build)'
    : !existsSync(A1)
      ? 'needs ../shared/data/her2st/A1'
      : null;
if (skipReason) console.log(`hierarchy e2e skipped: ${skipReason}`);

describe.skipIf(skipReason !== null)('similar tissue and the Poincaré disk in Chromium', () => {
  let studio: Studio;
  let server: BrowserServer;
  let browser: Browser;
  let page: Page;
  let demo: SectionSummary;
  let spots: SectionSpots;
  const problems: string[] = [];

  beforeAll(async () => {
    const cacheDir = join(root, '.delst-cache', 'e2e');
    mkdirSync(cacheDir, { recursive: true });
    mkdirSync(SHOTS, { recursive: true });
    studio = new Studio({ cacheDir });
    await studio.openPath(demoPath());
    await studio.openPath(A1);
    [demo] = await studio.listSections();
    spots = await studio.getSpots(demo.id);
    server = await startBrowserServer({ studio, rendererDir });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
    page.on('pageerror', (error) => problems.push(error.message));
  });

  afterAll(() => closeApp({ browser, server, studio }));

  it('finds similar tissue for a spot: k rings on the slides, a list that jumps to A1', async () => {
    await page.goto(`${server.url}&drawer=canvas&overlay=webgl`);
    const stage = page.locator(`[data-testid=slide][data-section-id="${demo.id}"]`);
    await expect.poll(() => stage.getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
    const model = page.locator('[data-testid=prediction-model]');
    await expect.poll(() => model.locator('option').count()).toBeGreaterThan(1);
    await model.selectOption('base');
    const box = (await stage.boundingBox())!;
    const index = spots.inTissue.findIndex((inside, i) => inside && i > spots.ids.length / 2);
    const p = onScreen(await stage.getAttribute('data-view'), spots, index);
    await page.mouse.click(box.x + p.x, box.y + p.y);
    await expect.poll(() => stage.getAttribute('data-selected-spot')).toBe(spots.ids[index]);
    await page.locator('[data-testid=find-similar]').click();
    const list = page.locator('[data-testid=similar-list]');
    // While the open sections are embedded, the list shows the job's progress.
    const progress = list.locator('[data-testid=inference-progress]');
    await expect.poll(() => progress.getAttribute('data-phase'), { timeout: 60_000 }).toBe('embedding');
    await list.screenshot({ path: join(SHOTS, 'similar-progress.png') });
    await expect.poll(() => list.getAttribute('data-count'), { timeout: 90_000 }).toBe('10');
    expect(await progress.count()).toBe(0);
    const expected = await studio.findSimilarSpots(demo.id, index, { modelId: 'base', k: 10 });
    const items = page.locator('[data-testid=similar-item]');
    expect(await items.evaluateAll((e) => e.map((el) => el.getAttribute('data-spot-id')))).toEqual(
      expected.map((s) => s.spotId),
    );
    // One ring per similar spot of this section (the query spot among them, dashed).
    const here = expected.filter((s) => s.sectionId === demo.id).length;
    await expect.poll(() => stage.locator('[data-testid=similar-ring]').count()).toBe(here);
    expect(await stage.locator('[data-testid=similar-ring][data-rank="0"]').count()).toBe(1);
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(SHOTS, 'similar.png') });

    // More neighbours, some in A1: the list opens one beside the demo, centred and selected, ringed.
    await list.locator('[data-testid=similar-k]').selectOption('50');
    await expect.poll(() => list.getAttribute('data-count'), { timeout: 60_000 }).toBe('50');
    const more = await studio.findSimilarSpots(demo.id, index, { modelId: 'base', k: 50 });
    await expect
      .poll(() => stage.locator('[data-testid=similar-ring]').count())
      .toBe(more.filter((s) => s.sectionId === demo.id).length);
    const inA1 = more.find((s) => s.sectionId !== demo.id);
    expect(inA1).toBeDefined();
    if (inA1) {
      await items.nth(more.indexOf(inA1)).click();
      const right = page.locator(`[data-testid=slide][data-section-id="${inA1.sectionId}"]`);
      await expect.poll(() => right.getAttribute('data-tiles-loaded'), { timeout: 60_000 }).toBe('true');
      await expect.poll(() => right.getAttribute('data-selected-spot')).toBe(inA1.spotId);
      const rings = more.filter((s) => s.sectionId === inA1.sectionId).length;
      await expect.poll(() => right.locator('[data-testid=similar-ring]').count()).toBe(rings);
      await page.waitForTimeout(500);
      await page.screenshot({ path: join(SHOTS, 'similar-jump.png') });
      await page.locator('[data-testid=compare-toggle]').click();
    }
  });

  it('shows the Poincaré disk: drawn points, click one to select it on the slide, lasso to ring spots', async () => {
    const stage = page.locator(`[data-testid=slide][data-section-id="${demo.id}"]`);
    await page.locator('[data-testid=label-select]').selectOption('expression_cluster');
    await page.locator('[data-testid=hierarchy-toggle]').click();
    const panel = page.locator('[data-testid=hierarchy-panel]');
    await expect.poll(() => panel.getAttribute('data-ready'), { timeout: 90_000 }).toBe('true');
    const disk = panel.locator('[data-testid=poincare-disk]');
    await expect.poll(() => disk.getAttribute('data-points')).toBe(String(demo.spots));
    // The canvas has drawn coloured pixels inside the disk (not only its background).
    const shot = await pixels(await disk.screenshot());
    let coloured = 0;
    for (let y = 0; y < shot.height; y += 2) {
      for (let x = 0; x < shot.width; x += 2) {
        const [r, g, b] = shot.rgb(x, y);
        if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
      }
    }
    expect(coloured).toBeGreaterThan(50);

    // Click the point of a spot: it becomes the selection on the slide.
    const map = await studio.getHyperbolicMap([demo.id], { modelId: 'base', genes: true });
    const { image, spotIndex } = map.sections[0];
    const box = (await disk.boundingBox())!;
    const R = Number(await disk.getAttribute('data-radius-px'));
    const at = (i: number) => ({
      x: box.x + box.width / 2 + R * image.x[i],
      y: box.y + box.height / 2 - R * image.y[i],
    });
    // The point farthest from all others, so the click cannot land on a neighbour.
    let pick = 0;
    let lonely = -1;
    for (let i = 0; i < spotIndex.length; i++) {
      let nearest = Infinity;
      for (let j = 0; j < spotIndex.length; j++) {
        if (j !== i) nearest = Math.min(nearest, Math.hypot(image.x[i] - image.x[j], image.y[i] - image.y[j]));
      }
      if (nearest > lonely) [lonely, pick] = [nearest, i];
    }
    await page.mouse.click(at(pick).x, at(pick).y);
    await expect.poll(() => stage.getAttribute('data-selected-spot')).toBe(spots.ids[spotIndex[pick]]);

    // A lasso round the centre rings the spots whose points fall inside it.
    const c = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
    const rr = R * 0.35;
    await page.mouse.move(c.x + rr, c.y);
    await page.mouse.down();
    for (let a = 0; a <= 24; a++) {
      await page.mouse.move(c.x + rr * Math.cos((a / 24) * 2 * Math.PI), c.y + rr * Math.sin((a / 24) * 2 * Math.PI));
    }
    await page.mouse.up();
    const inside = image.radius.filter((r) => r < 0.33).length;
    const rings = stage.locator('[data-testid=picked-ring]');
    if (inside > 0) await expect.poll(() => rings.count()).toBeGreaterThanOrEqual(inside);
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(SHOTS, 'hierarchy.png') });
    await panel.locator('[data-testid=disk-show-both]').click();
    await expect.poll(() => disk.getAttribute('data-points')).toBe(String(2 * demo.spots));
    await page.waitForTimeout(200);
    await page.screenshot({ path: join(SHOTS, 'hierarchy-both.png') });
    expect(problems).toEqual([]);
  });
});

// Predictions through the StudioApi (issue 5, Predictions on the slide): the bundled base model on HER2ST A1 and the
// demo (B4): a probe on A1's pathologist column, kNN expression from A1's spots, and the errors. Needs
// ../shared/data/her2st/A1.

import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Studio } from '../../core/api/studio.js';
import { openSections } from '../../core/readers/open.js';
import { demoPath, packageRoot } from '../../core/resources.js';

const A1 = resolve(packageRoot(), '..', 'shared', 'data', 'her2st', 'A1');
const skip = !existsSync(A1);
if (skip) console.log('predictions API test skipped: needs ../shared/data/her2st/A1');

describe.skipIf(skip)('predictSection with the base model', () => {
  let studio: Studio;
  let a1: string;
  let demo: string;

  beforeAll(async () => {
    studio = new Studio({ cacheDir: join(tmpdir(), 'delst-predictions-test-unused') });
    demo = (await studio.openPath(demoPath())).opened[0].id;
    a1 = (await studio.openPath(A1)).opened[0].id;
  });

  afterAll(async () => {
    await studio?.shutdown();
  });

  it('predicts A1 from itself: classes of its pathologist column, a resubstitution warning', async () => {
    const [spots, summary] = await Promise.all([
      studio.getSpots(a1),
      studio.listSections().then((all) => all.find((s) => s.id === a1)!),
    ]);
    const result = await studio.predictSection(a1, {
      modelId: 'base',
      labelColumn: 'pathologist',
      referenceSectionIds: [a1],
    });
    const known = Object.keys(summary.labels.pathologist);
    expect(result.modelId).toBe('base');
    expect(result.classes!.length).toBeGreaterThan(1);
    for (const c of result.classes!) expect(known).toContain(c);
    expect(result.classes).not.toContain('undetermined');
    expect(result.predictedClass).toHaveLength(spots.ids.length);
    expect(result.probability).toHaveLength(spots.ids.length);
    spots.inTissue.forEach((inside, i) => {
      if (!inside) return;
      expect(result.classes).toContain(result.predictedClass![i]);
      const p = result.probability![i]!;
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThanOrEqual(1);
    });
    expect(result.warnings.join(' ')).toMatch(/resubstitution/);
  });

  it('predicts ERBB2 on the demo from A1, with the measured values', async () => {
    const spots = await studio.getSpots(demo);
    const started = Date.now();
    const result = await studio.predictSection(demo, { modelId: 'base', referenceSectionIds: [a1], genes: ['erbb2'] });
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(result.warnings.join(' ')).not.toMatch(/resubstitution/);
    expect(result.genes).toHaveLength(1);
    const [gene] = result.genes;
    expect(gene.symbol).toBe('ERBB2');
    expect(gene.predicted).toHaveLength(spots.ids.length);
    expect(gene.measured).toHaveLength(spots.ids.length);
    spots.inTissue.forEach((inside, i) => {
      if (!inside) return;
      expect(Number.isFinite(gene.predicted[i])).toBe(true);
      expect(Number.isFinite(gene.measured![i])).toBe(true);
    });
  });

  it('defaults the references to the other open sections', async () => {
    const result = await studio.predictSection(demo, { modelId: 'base', labelColumn: 'pathologist' });
    expect(result.referenceSectionIds).toEqual([a1]);
    expect(result.warnings).toEqual([]);
  });

  it('names the errors', async () => {
    await expect(studio.predictSection(a1, { modelId: 'nope' })).rejects.toThrow(/no model with id nope/);
    await expect(
      studio.predictSection(demo, { modelId: 'base', referenceSectionIds: [a1], labelColumn: 'nothing' }),
    ).rejects.toThrow(/label column 'nothing' missing in all reference sections/);
    await expect(studio.predictSection('s999', { modelId: 'base' })).rejects.toThrow(/no open section/);
    await expect(
      studio.predictSection(demo, { modelId: 'base', referenceSectionIds: [a1], genes: ['NOTAGENE'] }),
    ).rejects.toThrow(/NOTAGENE/);
    const [section] = (await openSections(demoPath())).sections;
    const bare = studio.addSection({ ...section, name: 'no image', image: null }).id;
    await expect(studio.predictSection(bare, { modelId: 'base', referenceSectionIds: [a1] })).rejects.toThrow(
      /no image has no H&E image/,
    );
    await expect(studio.predictSection(demo, { modelId: 'base', referenceSectionIds: [bare] })).rejects.toThrow(
      /reference section no image has no H&E image/,
    );
  });
});

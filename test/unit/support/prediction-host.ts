// What a PredictionManager reads in the tests: the bundled demo and HER2ST A1, opened directly (no Studio sections).

import type { Studio } from '../../../core/api/studio.js';
import type { PredictableSection, PredictionHost } from '../../../core/api/predictions.js';
import { openSections } from '../../../core/readers/open.js';
import { demoPath } from '../../../core/resources.js';

/** A host with the demo as 'demo' and the section at `a1` as 'a1'; the models are `studio`'s. */
export async function demoAndA1Host(studio: Studio, a1: string): Promise<PredictionHost> {
  const open: PredictableSection[] = [];
  for (const [id, path] of [
    ['demo', demoPath()],
    ['a1', a1],
  ]) {
    const [section] = (await openSections(path)).sections;
    open.push({ id, section, labels: section.labels });
  }
  return {
    listModels: () => studio.listModels(),
    section: (id) => open.find((s) => s.id === id)!,
    sections: () => open,
  };
}

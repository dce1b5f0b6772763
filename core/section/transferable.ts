// A Section as plain data for postMessage to a worker thread (core/api/inference-worker.ts) and back to a Section
// there. Structured clone copies typed arrays, Maps and plain objects but drops class prototypes, so the one class
// inside a Section, SparseCounts, travels as its arrays. Only the Section's own fields travel: whatever else an
// object carries (a reader's extras) stays behind.

import type { Section } from './section.js';
import { SparseCounts, type TransferableCounts } from './sparse-counts.js';

export type TransferableSection = Omit<Section, 'counts'> & { readonly counts: TransferableCounts };

/** The section's fields as structured-clone data; arrays are shared with the section, not copied. */
export function toTransferable(section: Section): TransferableSection {
  return {
    name: section.name,
    format: section.format,
    source: section.source,
    spots: section.spots,
    genes: section.genes,
    counts: section.counts.toTransferable(),
    image: section.image,
    micronsPerPixel: section.micronsPerPixel,
    spotDiameterMicrons: section.spotDiameterMicrons,
    spotSpacingMicrons: section.spotSpacingMicrons,
    labels: new Map(section.labels), // a ReadonlyMap may be any class; a Map clones
    warnings: section.warnings,
  };
}

/** The Section back from `toTransferable` after a structured clone. */
export function fromTransferable(t: TransferableSection): Section {
  return { ...t, counts: SparseCounts.fromTransferable(t.counts) };
}

// Turns spots + the chosen label column into draw groups (one per class) and legend entries.

import type { SectionSpots } from './api-types.js';
import type { LegendEntry } from './Legend.svelte';
import { classColor } from './palette.js';
import type { SpotGroup, SpotLayer } from './SpotOverlay.js';

export const UNLABELLED = '(no label)';

export interface StyledSpots {
  readonly layer: SpotLayer;
  /** Empty in outline mode. */
  readonly legend: LegendEntry[];
  readonly visible: number;
}

/**
 * @param classOrder classes in legend order (most frequent first, from the section summary): fixes their colours.
 * @param column label column to colour by, or null for plain outlines.
 */
export function styleSpots(
  spots: SectionSpots,
  column: string | null,
  classOrder: readonly string[],
  showOutsideTissue: boolean,
): StyledSpots {
  const visible: number[] = [];
  for (let i = 0; i < spots.ids.length; i++) if (showOutsideTissue || spots.inTissue[i]) visible.push(i);

  const values = column === null ? undefined : spots.labels[column];
  if (!values) {
    return {
      layer: { x: spots.x, y: spots.y, diameter: spots.diameter, groups: [{ color: null, indices: visible }] },
      legend: [],
      visible: visible.length,
    };
  }

  const byClass = new Map<string, number[]>(classOrder.map((name) => [name, []]));
  const unlabelled: number[] = [];
  for (const i of visible) {
    const value = values[i];
    if (value === null) unlabelled.push(i);
    else {
      let members = byClass.get(value);
      if (!members) byClass.set(value, (members = []));
      members.push(i);
    }
  }
  const groups: SpotGroup[] = [];
  const legend: LegendEntry[] = [];
  [...byClass].forEach(([name, indices], k) => {
    if (indices.length === 0) return;
    const color = classColor(k);
    groups.push({ color, indices });
    legend.push({ name, color, count: indices.length });
  });
  if (unlabelled.length > 0) {
    groups.push({ color: null, indices: unlabelled });
    legend.push({ name: UNLABELLED, color: null, count: unlabelled.length });
  }
  return { layer: { x: spots.x, y: spots.y, diameter: spots.diameter, groups }, legend, visible: visible.length };
}

// Per-spot RGBA8 colours for the overlay, one array rewritten per colour change. Alpha says how a spot is drawn:
// FILLED (a disc in its colour), OUTLINE (a dark ring: spots without a class, or no colouring), HIDDEN.

import type { LegendEntry } from './Legend.svelte';
import { colourLut, LUT_SIZE } from './colour-maps.js';
import { positionOf, type GeneScale } from './gene-scale.js';
import { classColor } from './palette.js';

export const FILLED = 255;
export const OUTLINE = 128;
export const HIDDEN = 0;

export const UNLABELLED = '(no label)';

/** The colour-by value that means "the gene picked in the search box" (the other values name label columns; ''
 * means outline only). */
export const GENE_COLUMN = '\u0000gene';

/** Colour-by values of the Prediction group: the probe's class on a label column (this prefix + the column), and
 * the predicted expression of the gene picked in the search box. */
export const PREDICTED_CLASS = '\u0000predicted-class:';
export const PREDICTED_GENE = '\u0000predicted-gene';

export interface SpotColouring {
  /** RGBA8 per spot. */
  readonly colours: Uint8Array;
  /** Label classes with their counts over the spots on show (empty unless colouring by a label). */
  readonly legend: LegendEntry[];
  /** Spots drawn (not hidden). */
  readonly visible: number;
}

/** Every spot `shown` as a plain outline. */
export function outlineColours(shown: Uint8Array): SpotColouring {
  const colours = new Uint8Array(shown.length * 4);
  let visible = 0;
  for (let i = 0; i < shown.length; i++) {
    if (!shown[i]) continue;
    colours[i * 4 + 3] = OUTLINE;
    visible++;
  }
  return { colours, legend: [], visible };
}

/**
 * One colour per class of a label column (classes in `classOrder` first, so colours stay put), spots without a
 * class as outlines; classes in `hidden` (and UNLABELLED, when in it) are left out of the drawing but stay in the
 * legend with their counts.
 */
export function labelColours(
  labels: readonly (string | null)[],
  classOrder: readonly string[],
  shown: Uint8Array,
  hidden: ReadonlySet<string>,
  /** Colours of their own for some classes (an annotation palette); the others take the fixed palette's. */
  colors?: ReadonlyMap<string, string>,
): SpotColouring {
  const classes = new Map<string, number>(classOrder.map((name, k) => [name, k]));
  const counts: number[] = classOrder.map(() => 0);
  let unlabelled = 0;
  const classOf = new Int32Array(shown.length).fill(-1);
  for (let i = 0; i < shown.length; i++) {
    if (!shown[i]) continue;
    const value = labels[i];
    if (value === null || value === undefined) {
      unlabelled++;
      continue;
    }
    let k = classes.get(value);
    if (k === undefined) {
      k = classes.size;
      classes.set(value, k);
      counts.push(0);
    }
    counts[k]++;
    classOf[i] = k;
  }
  const colorOf = (name: string, k: number) => colors?.get(name) ?? classColor(k);
  const rgb = [...classes.keys()].map((name, k) => hexRgb(colorOf(name, k)));
  const off = [...classes.keys()].map((name) => hidden.has(name));
  const hideUnlabelled = hidden.has(UNLABELLED);
  const colours = new Uint8Array(shown.length * 4);
  let visible = 0;
  for (let i = 0; i < shown.length; i++) {
    if (!shown[i]) continue;
    const k = classOf[i];
    if (k < 0) {
      if (hideUnlabelled) continue;
      colours[i * 4 + 3] = OUTLINE;
    } else {
      if (off[k]) continue;
      const [r, g, b] = rgb[k];
      colours[i * 4] = r;
      colours[i * 4 + 1] = g;
      colours[i * 4 + 2] = b;
      colours[i * 4 + 3] = FILLED;
    }
    visible++;
  }
  const legend: LegendEntry[] = [];
  [...classes.keys()].forEach((name, k) => {
    if (counts[k] > 0) legend.push({ name, color: colorOf(name, k), count: counts[k], hidden: off[k] });
  });
  if (unlabelled > 0) legend.push({ name: UNLABELLED, color: null, count: unlabelled, hidden: hideUnlabelled });
  return { colours, legend, visible };
}

/** Gene values through a colour map between the scale's limits. */
export function geneColours(values: Float32Array, scale: GeneScale, shown: Uint8Array): SpotColouring {
  const lut = colourLut(scale.map);
  const colours = new Uint8Array(shown.length * 4);
  const position = positionOf(scale);
  const last = LUT_SIZE - 1;
  let visible = 0;
  for (let i = 0; i < shown.length; i++) {
    if (!shown[i]) continue;
    const k = Math.round(position(values[i]) * last) * 4;
    colours[i * 4] = lut[k];
    colours[i * 4 + 1] = lut[k + 1];
    colours[i * 4 + 2] = lut[k + 2];
    colours[i * 4 + 3] = FILLED;
    visible++;
  }
  return { colours, legend: [], visible };
}

function hexRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

// A fixed qualitative palette for label classes: distinct hues that stay readable over pink/purple H&E.

export const PALETTE: readonly string[] = [
  '#1f77b4', // blue
  '#ff7f0e', // orange
  '#2ca02c', // green
  '#d62728', // red
  '#17becf', // cyan
  '#bcbd22', // olive
  '#8c564b', // brown
  '#9467bd', // purple
  '#e377c2', // pink
  '#393b79', // navy
  '#7f7f7f', // grey
  '#ffbb78', // light orange
];

/** Colour of the i-th class (classes beyond the palette reuse it). */
export function classColor(index: number): string {
  return PALETTE[index % PALETTE.length];
}

/** Colour used for spots without a class, and for plain outlines. */
export const OUTLINE_COLOR = '#111827';

// The length a scale bar shows: the longest 1-2-5 step in microns that fits the room it has.

const NICE_MICRONS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000];

/** The longest nice length that fits in `maxPx` screen pixels, and its width; null when none fits. */
export function niceLength(pxPerMicron: number, maxPx: number): { microns: number; px: number } | null {
  let best: { microns: number; px: number } | null = null;
  for (const microns of NICE_MICRONS) if (microns * pxPerMicron <= maxPx) best = { microns, px: microns * pxPerMicron };
  return best;
}

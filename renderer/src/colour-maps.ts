// Perceptually uniform colour maps for gene expression, as 33 stops each: matplotlib's 256-entry tables sampled
// every 8th entry (viridis and magma by van der Walt & Smith, CC0; cividis by Nuñez, Anderton & Renslow 2018,
// readable with colour-vision deficiency). Linear interpolation between the stops stays within 2/255 of the full
// tables for viridis and magma, 6/255 for cividis.

export const COLOUR_MAPS = {
  viridis: stops(
    '#440154 #470d60 #48186a #482374 #472d7b #453781 #424086 #3e4989 #3b528b #375b8d #33638d ' +
      '#2f6b8e #2c728e #297a8e #26828e #23898e #21918c #1f978b #1f9f88 #21a685 #27ad81 #31b57b ' +
      '#3dbc74 #4cc26c #5cc863 #6ece58 #81d34d #95d840 #aadc32 #c0df25 #d5e21a #eae51a #fde725',
  ),
  magma: stops(
    '#000004 #030312 #0a0822 #130d34 #1d1147 #29115a #36106b #440f76 #51127c #5d177f #6a1c81 ' +
      '#762181 #832681 #902a81 #9c2e7f #aa337d #b73779 #c23b75 #cf4070 #db476a #e55064 #ee5b5e ' +
      '#f4695c #f9785d #fb8761 #fd9668 #fea571 #feb47b #fec287 #fed194 #fde0a1 #fceeb0 #fcfdbf',
  ),
  cividis: stops(
    '#00224e #00285b #002e6a #053371 #1a386f #273e6e #32436d #3b496c #434e6c #4b546c #535a6d ' +
      '#5a5f6e #61656f #686a71 #6f7073 #767676 #7d7c78 #838179 #8b8778 #928d78 #9a9376 #a29975 ' +
      '#aaa073 #b3a670 #bbad6d #c3b369 #ccba64 #d4c15f #ddc858 #e6d051 #efd748 #f8df3c #fee838',
  ),
  // Diverging, for differences (predicted - measured): ColorBrewer RdBu (Brewer, Apache 2.0), blue low, white 0, red
  // high. Not offered for plain expression.
  rdbu: stops('#053061 #2166ac #4393c3 #92c5de #d1e5f0 #f7f7f7 #fddbc7 #f4a582 #d6604d #b2182b #67001f'),
} as const;

export type ColourMapName = keyof typeof COLOUR_MAPS;
/** The sequential maps offered for expression. */
export const COLOUR_MAP_NAMES: ColourMapName[] = ['viridis', 'magma', 'cividis'];

/** Entries in a lookup table: one per 8-bit level. */
export const LUT_SIZE = 256;

function stops(hex: string): readonly string[] {
  return hex.split(' ');
}

function rgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

const luts = new Map<ColourMapName, Uint8Array>();

/** The map as LUT_SIZE RGBA8 entries (alpha 255), built once. */
export function colourLut(name: ColourMapName): Uint8Array {
  let lut = luts.get(name);
  if (!lut) {
    const colours = COLOUR_MAPS[name].map(rgb);
    lut = new Uint8Array(LUT_SIZE * 4);
    for (let i = 0; i < LUT_SIZE; i++) {
      const at = (i / (LUT_SIZE - 1)) * (colours.length - 1);
      const k = Math.min(Math.floor(at), colours.length - 2);
      const f = at - k;
      for (let c = 0; c < 3; c++) lut[i * 4 + c] = Math.round(colours[k][c] * (1 - f) + colours[k + 1][c] * f);
      lut[i * 4 + 3] = 255;
    }
    luts.set(name, lut);
  }
  return lut;
}

/** A CSS gradient from left (low) to right (high), for colour bars. */
export function cssGradient(name: ColourMapName): string {
  const list = COLOUR_MAPS[name];
  return `linear-gradient(to right, ${list.map((c, i) => `${c} ${((i / (list.length - 1)) * 100).toFixed(2)}%`).join(', ')})`;
}

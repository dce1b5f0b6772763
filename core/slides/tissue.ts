// Tissue detection on H&E slides: which parts of the image hold tissue and which are glass (or a painted
// background), so tiling skips the background. The image is decoded once, shrunk to about 1k px on its long side;
// per pixel, H&E stain is saturated colour and glass is near-grey and bright:
// * tissue = HSV saturation above an Otsu threshold (computed over the non-black pixels; never below a floor, so a
//   slide of glass alone stays empty), and not black (some datasets paint the background black), and a little
//   darker than white (mean optical density above a floor), and grainy (glass tinted pink is smooth);
// * clean-up: a closing joins stroma around fat cells and nuclei, small holes are filled (fat, lumina) and small
//   specks removed (dust, debris). Sizes are fractions of the mask, so they do not depend on the pixel size.
// * pasted pictures: on a painted-black background, a small upright rectangle of picture at the image's edge is an
//   inset (HER2ST pastes a thumbnail of the annotated section into a corner), not tissue.

import { DataError } from '../readers/errors.js';
import type { SectionImage } from '../section/section.js';
import { asRgb, fileSource, pixelSource } from './pyramid.js';

export interface TissueOptions {
  /** Long side of the mask in pixels (default 1024; never more than the image). */
  readonly maxSide?: number;
  /** Lowest saturation threshold (default 0.07): an Otsu threshold below it is raised to it. */
  readonly minSaturation?: number;
  /**
   * Highest saturation threshold (default 0.11): pale tissue (fat, loose stroma) is about 0.12 and glass 0.05-0.09,
   * but Otsu's threshold falls between dark and pale tissue where there is little glass, so it is capped.
   */
  readonly maxSaturation?: number;
  /** Pixels whose brightest channel is below this are background (default 30 of 255: a painted black). */
  readonly minValue?: number;
  /** Lowest mean optical density, -log10(I / 255) over the channels, of tissue (default 0.04). */
  readonly minOpticalDensity?: number;
  /**
   * Lowest local standard deviation of the grey level (0-255, over ~1% of the long side) of tissue (default 3):
   * glass is smooth (about 1) even where it is tinted pink, tissue is grainy (7 and more).
   */
  readonly minTexture?: number;
  /** Radius of the closing in mask pixels (default: long side / 300, at least 1). */
  readonly closeRadius?: number;
  /** Holes smaller than this fraction of the mask's pixels are filled (default 0.005). */
  readonly maxHoleFraction?: number;
  /** Tissue pieces smaller than this fraction of the mask's pixels are dropped (default 0.0005). */
  readonly minObjectFraction?: number;
}

export interface TissueMask {
  /** Mask size in pixels; 1 = tissue, row-major. */
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
  /** The image the mask was made from, in its pixels. */
  readonly imageWidth: number;
  readonly imageHeight: number;
  /** The saturation threshold used. */
  readonly threshold: number;
  /** Share of the mask that is tissue. */
  readonly fraction: number;
}

const DEFAULT_MAX_SIDE = 1024;

/** Tissue of a section's image (file or embedded pixels), in that image's pixels. */
export async function detectTissue(image: SectionImage, options: TissueOptions = {}): Promise<TissueMask> {
  const source = image.kind === 'file' ? await fileSource(image.path) : pixelSource(image);
  const maxSide = options.maxSide ?? DEFAULT_MAX_SIDE;
  if (!Number.isInteger(maxSide) || maxSide < 8) throw new RangeError(`maxSide must be an integer >= 8: ${maxSide}`);
  const shrink = Math.min(1, maxSide / Math.max(source.width, source.height));
  const width = Math.max(1, Math.round(source.width * shrink));
  const height = Math.max(1, Math.round(source.height * shrink));
  let raw: Buffer;
  try {
    raw = await asRgb(source.open()).resize(width, height, { fit: 'fill' }).raw().toBuffer();
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new DataError(source.name, `cannot decode the image for tissue detection: ${reason}`, { cause: error });
  }
  const rgb = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  const mask = tissueFromRgb(rgb, width, height, options);
  return { ...mask, imageWidth: source.width, imageHeight: source.height };
}

/** Tissue of an RGB raster (row-major, 3 bytes a pixel); the mask has the raster's size. */
export function tissueFromRgb(rgb: Uint8Array, width: number, height: number, options: TissueOptions = {}): TissueMask {
  const n = width * height;
  if (rgb.length !== n * 3)
    throw new RangeError(`expected ${n * 3} RGB bytes for ${width}x${height}, got ${rgb.length}`);
  const minValue = options.minValue ?? 30;
  const minOd = options.minOpticalDensity ?? 0.04;
  const minTexture = options.minTexture ?? 3;
  const saturation = new Float32Array(n);
  const grey = new Float32Array(n);
  const greySquared = new Float32Array(n);
  const candidate = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const r = rgb[3 * i];
    const g = rgb[3 * i + 1];
    const b = rgb[3 * i + 2];
    grey[i] = (r + g + b) / 3;
    greySquared[i] = grey[i] * grey[i];
    const max = Math.max(r, g, b);
    if (max < minValue) continue; // black: painted background
    saturation[i] = (max - Math.min(r, g, b)) / max;
    candidate[i] = opticalDensity(r, g, b) >= minOd ? 1 : 0;
  }
  const side = Math.max(width, height);
  // Stain is grainy (nuclei, fibres): a local mean keeps pale tissue above glass, a local spread tells them apart.
  const smooth = boxMean(saturation, width, height, Math.max(1, Math.round(side / 400)));
  const textureRadius = Math.max(1, Math.round(side / 200));
  const meanGrey = boxMean(grey, width, height, textureRadius);
  const meanSquare = boxMean(greySquared, width, height, textureRadius);
  const otsuThreshold = otsu(smooth, rgb, minValue);
  const threshold = Math.min(options.maxSaturation ?? 0.11, Math.max(options.minSaturation ?? 0.07, otsuThreshold));
  const data = new Uint8Array(n);
  const minVariance = minTexture * minTexture;
  for (let i = 0; i < n; i++) {
    const textured = meanSquare[i] - meanGrey[i] * meanGrey[i] >= minVariance;
    data[i] = candidate[i] && textured && smooth[i] > threshold ? 1 : 0;
  }

  const closeRadius = options.closeRadius ?? Math.max(1, Math.round(Math.max(width, height) / 300));
  const closed = erode(dilate(data, width, height, closeRadius), width, height, closeRadius);
  fillSmallHoles(closed, width, height, Math.round((options.maxHoleFraction ?? 0.005) * n));
  removeSmallObjects(closed, width, height, Math.round((options.minObjectFraction ?? 0.0005) * n));
  for (const inset of pastedInsets(rgb, width, height, minValue)) for (const p of inset) closed[p] = 0;
  let tissue = 0;
  for (let i = 0; i < n; i++) tissue += closed[i];
  return { width, height, data: closed, imageWidth: width, imageHeight: height, threshold, fraction: tissue / n };
}

/** Mean optical density of the three channels (0 for white). */
function opticalDensity(r: number, g: number, b: number): number {
  const od = (v: number) => -Math.log10(Math.max(v, 1) / 255);
  return (od(r) + od(g) + od(b)) / 3;
}

/** Mean over the (2 radius + 1)^2 square around each pixel (clipped at the edges), by running sums. */
function boxMean(values: Float32Array, width: number, height: number, radius: number): Float32Array {
  const pass = (input: Float32Array, start: (k: number) => number, stride: number, length: number, lines: number) => {
    const out = new Float32Array(input.length);
    for (let k = 0; k < lines; k++) {
      const at = start(k);
      let sum = 0;
      let count = 0;
      for (let i = 0; i < Math.min(radius, length); i++, count++) sum += input[at + i * stride];
      for (let i = 0; i < length; i++) {
        if (i + radius < length) {
          sum += input[at + (i + radius) * stride];
          count++;
        }
        if (i - radius - 1 >= 0) {
          sum -= input[at + (i - radius - 1) * stride];
          count--;
        }
        out[at + i * stride] = sum / count;
      }
    }
    return out;
  };
  const rows = pass(values, (y) => y * width, 1, width, height);
  return pass(rows, (x) => x, width, height, width);
}

/** Otsu's threshold of the saturations of the non-black pixels (256 bins over [0, 1]). */
function otsu(saturation: Float32Array, rgb: Uint8Array, minValue: number): number {
  const bins = 256;
  const histogram = new Float64Array(bins);
  let total = 0;
  for (let i = 0; i < saturation.length; i++) {
    if (Math.max(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) < minValue) continue;
    histogram[Math.min(bins - 1, Math.floor(saturation[i] * bins))]++;
    total++;
  }
  if (total === 0) return 1;
  let sumAll = 0;
  for (let k = 0; k < bins; k++) sumAll += k * histogram[k];
  let best = 0;
  let bestVariance = -1;
  let weightBelow = 0;
  let sumBelow = 0;
  for (let k = 0; k < bins - 1; k++) {
    weightBelow += histogram[k];
    sumBelow += k * histogram[k];
    const weightAbove = total - weightBelow;
    if (weightBelow === 0 || weightAbove === 0) continue;
    const difference = sumBelow / weightBelow - (sumAll - sumBelow) / weightAbove;
    const variance = weightBelow * weightAbove * difference * difference;
    if (variance > bestVariance) {
      bestVariance = variance;
      best = k;
    }
  }
  return (best + 1) / bins; // above bin `best`
}

// ---- morphology (square structuring element, separable running max/min) -------------------------------------

function dilate(mask: Uint8Array, width: number, height: number, radius: number): Uint8Array {
  return separable(mask, width, height, radius, 1);
}

function erode(mask: Uint8Array, width: number, height: number, radius: number): Uint8Array {
  return separable(mask, width, height, radius, 0);
}

/**
 * Dilation (`hit` 1: any 1 within the radius) or erosion (`hit` 0: any 0 within the radius) along rows, then
 * columns. Outside the image counts as background for dilation and as tissue for erosion, so a closing does not
 * eat tissue at the image edge.
 */
function separable(mask: Uint8Array, width: number, height: number, radius: number, hit: 0 | 1): Uint8Array {
  const rows = new Uint8Array(mask.length);
  for (let y = 0; y < height; y++) line(mask, rows, y * width, 1, width, radius, hit);
  const out = new Uint8Array(mask.length);
  for (let x = 0; x < width; x++) line(rows, out, x, width, height, radius, hit);
  return out;
}

/** One row or column: out[i] = hit when any of in[i - radius .. i + radius] is hit, else the other value. */
function line(
  input: Uint8Array,
  out: Uint8Array,
  start: number,
  stride: number,
  length: number,
  radius: number,
  hit: 0 | 1,
): void {
  let last = -Infinity; // position of the last `hit` seen ahead
  for (let i = 0; i < Math.min(radius, length); i++) if (input[start + i * stride] === hit) last = i;
  for (let i = 0; i < length; i++) {
    const ahead = i + radius;
    if (ahead < length && input[start + ahead * stride] === hit) last = ahead;
    out[start + i * stride] = i - last <= radius ? hit : 1 - hit;
  }
}

// ---- connected components (4-connected) ----------------------------------------------------------------------

/** Each 4-connected component of pixels equal to `value`: calls visit(pixels, touchesBorder). */
function components(
  mask: Uint8Array,
  width: number,
  height: number,
  value: 0 | 1,
  visit: (pixels: Int32Array, touchesBorder: boolean) => void,
): void {
  const seen = new Uint8Array(mask.length);
  const queue = new Int32Array(mask.length);
  for (let seed = 0; seed < mask.length; seed++) {
    if (seen[seed] || mask[seed] !== value) continue;
    let head = 0;
    let tail = 0;
    let border = false;
    queue[tail++] = seed;
    seen[seed] = 1;
    while (head < tail) {
      const p = queue[head++];
      const x = p % width;
      const y = (p - x) / width;
      if (x === 0 || y === 0 || x === width - 1 || y === height - 1) border = true;
      const push = (q: number) => {
        if (!seen[q] && mask[q] === value) {
          seen[q] = 1;
          queue[tail++] = q;
        }
      };
      if (x > 0) push(p - 1);
      if (x < width - 1) push(p + 1);
      if (y > 0) push(p - width);
      if (y < height - 1) push(p + width);
    }
    visit(queue.subarray(0, tail), border);
  }
}

/** Background pieces that do not reach the image edge and are smaller than `maxArea` become tissue. */
function fillSmallHoles(mask: Uint8Array, width: number, height: number, maxArea: number): void {
  const holes: Int32Array[] = [];
  components(mask, width, height, 0, (pixels, border) => {
    if (!border && pixels.length < maxArea) holes.push(pixels.slice());
  });
  for (const hole of holes) for (const p of hole) mask[p] = 1;
}

/** Tissue pieces smaller than `minArea` become background. */
function removeSmallObjects(mask: Uint8Array, width: number, height: number, minArea: number): void {
  const specks: Int32Array[] = [];
  components(mask, width, height, 1, (pixels) => {
    if (pixels.length < minArea) specks.push(pixels.slice());
  });
  for (const speck of specks) for (const p of speck) mask[p] = 0;
}

/**
 * Insets pasted onto a painted-black background: pieces of non-black picture that touch the image's edge, fill at
 * least 95 % of their bounding box (an upright rectangle, where a section's outline is ragged) and cover at most 15 %
 * of the image. Only where a fifth or more of the image is painted black (elsewhere glass fills the image).
 */
function pastedInsets(rgb: Uint8Array, width: number, height: number, minValue: number): Int32Array[] {
  const n = width * height;
  const picture = new Uint8Array(n);
  let black = 0;
  for (let i = 0; i < n; i++) {
    picture[i] = Math.max(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) >= minValue ? 1 : 0;
    black += 1 - picture[i];
  }
  if (black < 0.2 * n) return [];
  const insets: Int32Array[] = [];
  components(picture, width, height, 1, (pixels, touchesBorder) => {
    if (!touchesBorder || pixels.length > 0.15 * n) return;
    let [x0, y0, x1, y1] = [width, height, -1, -1];
    for (const p of pixels) {
      const x = p % width;
      const y = (p - x) / width;
      [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
    }
    if (pixels.length >= 0.95 * (x1 - x0 + 1) * (y1 - y0 + 1)) insets.push(pixels.slice());
  });
  return insets;
}

/** Whether image pixel (x, y) lies on tissue (nearest mask pixel; outside the image: no). */
export function isTissueAt(mask: TissueMask, x: number, y: number): boolean {
  const mx = Math.floor((x * mask.width) / mask.imageWidth);
  const my = Math.floor((y * mask.height) / mask.imageHeight);
  if (mx < 0 || my < 0 || mx >= mask.width || my >= mask.height) return false;
  return mask.data[my * mask.width + mx] === 1;
}

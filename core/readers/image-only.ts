// A bare H&E image (PNG, JPEG, TIFF/SVS) opened as a section without spots or genes, so the viewer can show a
// slide that has no spatial transcriptomics (yet). Only ever for a single image FILE the user opened: when a
// folder is searched, its images are other readers' business (a stray thumbnail must not become a section), so
// open.ts asks this reader last, and only about the path itself.

import { basename, extname } from 'node:path';
import { fromFile } from 'geotiff';
import type { Section, SectionImage } from '../section/section.js';
import { SparseCounts } from '../section/sparse-counts.js';
import { fileSource } from '../slides/pyramid.js';
import { readingFile } from './errors.js';
import { imageFormat, inspectImage, isFile, readBytes } from './files.js';
import type { SectionReader, SectionSource } from './reader.js';

/** TIFF ResolutionUnit values. */
const INCH = 2;
const CENTIMETRE = 3;
/** Above this a pixel size is no microscope's (72 or 300 dpi of a scan or a screenshot): unknown instead. */
const MAX_PLAUSIBLE_MPP = 50;

async function detect(path: string): Promise<SectionSource[]> {
  if (!(await isFile(path))) return [];
  const head = await readBytes(path, 0, 16).catch(() => null);
  if (!head || !imageFormat(head)) return [];
  const name = basename(path, extname(path)) || basename(path);
  return [{ format: 'image', name, path }];
}

/** The warning of an image whose file does not say its pixel size (gone once the user gives it: tiling). */
export const PIXEL_SIZE_UNKNOWN = 'pixel size unknown: no scale bar';

async function read(source: SectionSource): Promise<Section> {
  const file = source.path;
  const info = await inspectImage(file); // signature, truncation, header
  // The largest page of a multi-page TIFF (SVS): what the pyramid is built from.
  const { width, height } = await fileSource(file);
  const micronsPerPixel = info.format === 'tiff' ? await tiffMicronsPerPixel(file, width * height) : null;
  return imageOnlySection(source.name, { kind: 'file', path: file, width, height, scale: 1 }, micronsPerPixel);
}

/** The section of an image file alone: no spots, no genes; a warning where its pixel size is unknown. */
export function imageOnlySection(
  name: string,
  image: Extract<SectionImage, { kind: 'file' }>,
  micronsPerPixel: number | null,
): Section {
  return {
    name,
    format: 'image',
    source: image.path,
    spots: {
      ids: [],
      x: new Float64Array(0),
      y: new Float64Array(0),
      inTissue: new Uint8Array(0),
      arrayRow: new Float64Array(0),
      arrayCol: new Float64Array(0),
    },
    genes: { symbols: [], ids: [] },
    counts: SparseCounts.fromCsr(0, 0, [0], [], []),
    image,
    micronsPerPixel,
    spotDiameterMicrons: 0,
    spotSpacingMicrons: 0,
    labels: new Map(),
    warnings: micronsPerPixel === null ? [PIXEL_SIZE_UNKNOWN] : [],
  };
}

/**
 * Microns per pixel of a TIFF's full-resolution page: Aperio's `MPP = 0.2527` in ImageDescription, else the
 * resolution tags when they look like a microscope's. Null when nothing tells.
 */
export async function tiffMicronsPerPixel(file: string, pixels: number): Promise<number | null> {
  return readingFile(file, 'cannot read the TIFF tags', async () => {
    const tiff = await fromFile(file);
    try {
      const count = Math.min(await tiff.getImageCount(), 64);
      for (let page = 0; page < count; page++) {
        const ifd = await tiff.getImage(page);
        if (ifd.getWidth() * ifd.getHeight() !== pixels && count > 1) continue;
        const description: unknown = await ifd.fileDirectory.loadValue('ImageDescription').catch(() => undefined);
        const fromDescription = typeof description === 'string' ? aperioMpp(description) : null;
        if (fromDescription !== null) return fromDescription;
        const unit = Number(await ifd.fileDirectory.loadValue('ResolutionUnit').catch(() => undefined));
        const resolution = rational(await ifd.fileDirectory.loadValue('XResolution').catch(() => undefined));
        return resolutionMpp(resolution, unit);
      }
      return null;
    } finally {
      await tiff.close();
    }
  }).catch(() => null);
}

/** `MPP = 0.4990` of an Aperio ImageDescription (`Aperio Image Library v10 ... |MPP = 0.4990|...`), or null. */
export function aperioMpp(description: string): number | null {
  const match = /(?:^|\|)\s*MPP\s*=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)/.exec(description);
  const mpp = match ? Number(match[1]) : NaN;
  return Number.isFinite(mpp) && mpp > 0 && mpp <= MAX_PLAUSIBLE_MPP ? mpp : null;
}

/** Microns per pixel from TIFF XResolution (pixels per unit) and ResolutionUnit, or null. */
export function resolutionMpp(pixelsPerUnit: number | null, unit: number): number | null {
  if (pixelsPerUnit === null || !(pixelsPerUnit > 0)) return null;
  const micronsPerUnit = unit === CENTIMETRE ? 10_000 : unit === INCH ? 25_400 : NaN;
  const mpp = micronsPerUnit / pixelsPerUnit;
  return Number.isFinite(mpp) && mpp > 0 && mpp <= MAX_PLAUSIBLE_MPP ? mpp : null;
}

function rational(value: unknown): number | null {
  if (typeof value === 'number') return value;
  if (isArrayLike(value) && value.length >= 2) {
    const [num, den] = [Number(value[0]), Number(value[1])];
    return den > 0 ? num / den : null;
  }
  return null;
}

function isArrayLike(value: unknown): value is ArrayLike<unknown> {
  return (
    Array.isArray(value) ||
    (ArrayBuffer.isView(value) &&
      !(value instanceof DataView) &&
      typeof (value as { length?: unknown }).length === 'number')
  );
}

export const imageOnlyReader: SectionReader = { format: 'image', detect, read };

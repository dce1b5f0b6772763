// Opening a path: ask every format reader what it finds there, by content, then read those sections.
// A folder that is no section itself (her2st/ with 30 section folders, anndata/ with .h5ad files) is a
// collection: its entries are searched, two levels deep.

import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Section } from '../section/section.js';
import { annDataReader } from './anndata.js';
import { DataError } from './errors.js';
import { imageOnlyReader } from './image-only.js';
import { legacyStReader } from './legacy-st.js';
import type { SectionReader, SectionSource } from './reader.js';
import { spaceRangerReader } from './spaceranger.js';

// The image-only reader comes last, and is asked only about the path itself, never about a folder's entries
// (findIn): a bare H&E image the user opened is a section, a folder's stray thumbnail is not.
const READERS: readonly SectionReader[] = [spaceRangerReader, annDataReader, legacyStReader, imageOnlyReader];
const TOP_LEVEL_ONLY: ReadonlySet<SectionReader> = new Set([imageOnlyReader]);
const COLLECTION_DEPTH = 2;

/** Every section found at `path` (file or folder); DataError when the path is missing or of no known format. */
export async function findSections(path: string): Promise<SectionSource[]> {
  try {
    await stat(path);
  } catch {
    throw new DataError(path, 'no such file or folder');
  }
  const sources = await findIn(path, COLLECTION_DEPTH);
  if (sources.length === 0) {
    throw new DataError(
      path,
      'unknown format: expected a Space Ranger outs/ folder, an AnnData .h5ad file, a legacy ST folder (counts table + Spot Detector table) or an H&E image file (PNG, JPEG, TIFF)',
    );
  }
  return sources;
}

async function findIn(path: string, depth: number): Promise<SectionSource[]> {
  for (const reader of READERS) {
    if (depth < COLLECTION_DEPTH && TOP_LEVEL_ONLY.has(reader)) continue;
    const sources = await reader.detect(path);
    if (sources.length > 0) return sources;
  }
  if (depth === 0 || !(await stat(path)).isDirectory()) return [];
  const entries = (await readdir(path, { withFileTypes: true }))
    .filter((entry) => !entry.name.startsWith('.'))
    .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  const found: SectionSource[] = [];
  for (const entry of entries) {
    if (entry.isDirectory() || entry.isFile()) found.push(...(await findIn(join(path, entry.name), depth - 1)));
  }
  return found;
}

export async function readSection(source: SectionSource): Promise<Section> {
  const reader = READERS.find((r) => r.format === source.format);
  if (!reader) throw new DataError(source.path, `no reader for format ${source.format}`);
  return reader.read(source);
}

export interface OpenResult {
  readonly sections: Section[];
  /** Sections of a collection that could not be read; the rest still open. */
  readonly failures: DataError[];
}

/**
 * Reads every section at `path`; `onProgress` hears about each one as it is read. A path that is one section
 * fails as a whole; in a folder of several sections the broken ones are reported and the others open.
 */
export async function openSections(
  path: string,
  onProgress?: (done: number, total: number, name: string) => void,
): Promise<OpenResult> {
  const sources = await findSections(path);
  const sections: Section[] = [];
  const failures: DataError[] = [];
  for (const [i, source] of sources.entries()) {
    onProgress?.(i, sources.length, source.name);
    try {
      sections.push(await readSection(source));
    } catch (error) {
      if (!(error instanceof DataError) || sources.length === 1) throw error;
      failures.push(error);
    }
  }
  onProgress?.(sources.length, sources.length, '');
  if (sections.length === 0) throw failures[0];
  return { sections, failures };
}

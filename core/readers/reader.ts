// The seam between file formats and the rest of the app: each format is one SectionReader.
// `detect` looks at content (file signatures, table headers, HDF5 groups), not only at names.

import type { Section, SectionFormat } from '../section/section.js';

/** One section found in a path, not yet read. A folder may hold several (two Visium samples, four MOB sections). */
export interface SectionSource {
  readonly format: SectionFormat;
  readonly name: string;
  /** What the reader needs to find the section's files again (a folder, a file, an `outs/` path...). */
  readonly path: string;
  /** Reader-specific hints found during detection (e.g. which counts file belongs to which section). */
  readonly hints?: Readonly<Record<string, string>>;
}

export interface SectionReader {
  readonly format: SectionFormat;
  /** Sections of this format at `path` (a file or folder), or [] when the path is not this format. */
  detect(path: string): Promise<SectionSource[]>;
  /** Reads one section; throws DataError naming the file and the problem on bad input. */
  read(source: SectionSource): Promise<Section>;
}

// Spot labels as CSV: `spot_id,label`, one spot a line, an empty label for an unlabelled spot.
//
// Import is lenient about what spreadsheets and pandas write: a byte-order mark, CRLF line ends, quoted fields,
// a tab-separated file, a pandas index column (unnamed first column), `barcode`/`spot` for the spot column and
// `class`/`annotation` for the label column, and R/pandas spellings of a missing value (NA, nan, ...).

import { readText } from '../readers/files.js';
import { DataError } from '../readers/errors.js';
import { labelValue } from '../section/section.js';
import type { Annotations, ImportResult } from './annotations.js';
import { writeFileAtomic } from '../atomic-write.js';

// --- Export ---

function csvField(value: string): string {
  return /[",\r\n]/.test(value) || value !== value.trim() ? `"${value.replace(/"/g, '""')}"` : value;
}

/**
 * A section's labels as CSV text. With `spotIds` (a section's `spots.ids`): every spot in that order, an empty label
 * where unlabelled, so an import gives back exactly this state; without: the labelled spots, sorted by id.
 */
export function labelsToCsv(annotations: Annotations, sectionId: number, spotIds?: readonly string[]): string {
  const labels = annotations.spotLabelNames(sectionId);
  const ids = spotIds ?? [...labels.keys()].sort();
  const lines = ['spot_id,label'];
  for (const id of ids) lines.push(`${csvField(id)},${csvField(labels.get(id) ?? '')}`);
  return lines.join('\n') + '\n';
}

/** Writes a section's labels as CSV (atomically); returns the number of rows. */
export async function exportCsv(
  annotations: Annotations,
  sectionId: number,
  file: string,
  spotIds?: readonly string[],
): Promise<{ rows: number }> {
  const text = labelsToCsv(annotations, sectionId, spotIds);
  await writeFileAtomic(file, text);
  return { rows: text.split('\n').length - 2 };
}

// --- Parsing ---

export interface CsvRow {
  /** 1-based line where the row starts. */
  readonly line: number;
  readonly fields: string[];
}

/** RFC 4180 records (quoted fields may hold separators, quotes and line breaks); throws on an unclosed quote. */
export function parseDelimited(text: string, file: string, separator: ',' | '\t'): CsvRow[] {
  const rows: CsvRow[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let rowLine = 1;
  let i = 0;
  const endRow = () => {
    fields.push(field);
    field = '';
    if (!(fields.length === 1 && fields[0].trim() === '')) rows.push({ line: rowLine, fields });
    fields = [];
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '"' && field === '') {
      const quotedAt = line;
      i++;
      for (;;) {
        if (i >= text.length) throw new DataError(file, `line ${quotedAt}: a quoted field is never closed`);
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      // Anything between the closing quote and the separator is kept, as spreadsheets do.
      continue;
    }
    if (c === separator) {
      fields.push(field);
      field = '';
      i++;
    } else if (c === '\n' || c === '\r') {
      endRow();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      rowLine = line;
    } else {
      field += c;
      i++;
    }
  }
  if (field !== '' || fields.length > 0) endRow();
  return rows;
}

const SPOT_COLUMNS = ['spot_id', 'spot', 'barcode', 'spot_barcode', 'id'];
const LABEL_COLUMNS = ['label', 'class', 'annotation', 'classification', 'pathologist', 'label_name'];

export interface ParsedLabelCsv {
  /** Spot id -> label (null: unlabelled), in file order. */
  readonly labels: Map<string, string | null>;
  readonly warnings: string[];
}

/** Reads `spot_id,label` CSV (or TSV) text; bad files throw DataErrors naming the line. */
export function parseLabelCsv(text: string, file: string): ParsedLabelCsv {
  const body = text.replace(/^\uFEFF/, '');
  const firstLine = body.split(/\r?\n/, 1)[0] ?? '';
  const separator = firstLine.includes('\t') && !firstLine.includes(',') ? '\t' : ',';
  const rows = parseDelimited(body, file, separator);
  if (rows.length === 0) throw new DataError(file, 'is empty');
  const header = rows[0].fields.map((h) => h.trim());
  const lower = header.map((h) => h.toLowerCase());
  let spotColumn = lower.findIndex((h) => SPOT_COLUMNS.includes(h));
  if (spotColumn < 0) spotColumn = 0; // a pandas index or an unnamed first column
  let labelColumn = lower.findIndex((h, i) => i !== spotColumn && LABEL_COLUMNS.includes(h));
  if (labelColumn < 0 && header.length === 2) labelColumn = 1 - spotColumn;
  if (labelColumn < 0) {
    throw new DataError(
      file,
      `line ${rows[0].line}: no label column (expected a header "spot_id,label"; found ${header.map((h) => JSON.stringify(h)).join(', ')})`,
    );
  }
  const labels = new Map<string, string | null>();
  const firstSeen = new Map<string, number>();
  const warnings: string[] = [];
  for (const row of rows.slice(1)) {
    if (row.fields.length <= Math.max(spotColumn, labelColumn)) {
      throw new DataError(file, `line ${row.line}: expected ${header.length} fields, found ${row.fields.length}`);
    }
    const spot = row.fields[spotColumn].trim();
    if (spot === '') throw new DataError(file, `line ${row.line}: no spot id`);
    const label = labelValue(row.fields[labelColumn]);
    if (labels.has(spot) && labels.get(spot) !== label) {
      throw new DataError(
        file,
        `line ${row.line}: spot ${JSON.stringify(spot)} appears again with another label (first on line ${firstSeen.get(spot)})`,
      );
    }
    if (!labels.has(spot)) firstSeen.set(spot, row.line);
    labels.set(spot, label);
  }
  return { labels, warnings };
}

// --- Import ---

export interface CsvImportOptions {
  /** The section's spot ids: rows naming other spots are skipped (all of them: a DataError). */
  readonly spotIds: readonly string[];
  /** Clear the section's labels first (default false); regions are left as they are. */
  readonly replace?: boolean;
}

export interface CsvImportReport extends ImportResult {
  readonly rows: number;
  readonly warnings: readonly string[];
}

export function importCsvText(
  annotations: Annotations,
  sectionId: number,
  text: string,
  file: string,
  options: CsvImportOptions,
): CsvImportReport {
  const parsed = parseLabelCsv(text, file);
  const known = new Set(options.spotIds);
  const labels = new Map<string, string | null>();
  const unknown: string[] = [];
  for (const [spot, label] of parsed.labels) {
    if (known.has(spot)) labels.set(spot, label);
    else unknown.push(spot);
  }
  const warnings = [...parsed.warnings];
  if (unknown.length > 0) {
    if (labels.size === 0) {
      throw new DataError(
        file,
        `none of its ${unknown.length} spot ids is a spot of this section (first: ${JSON.stringify(unknown[0])}); is it for another section?`,
      );
    }
    warnings.push(
      `${unknown.length} rows name spots this section does not have and were skipped (first: ${JSON.stringify(unknown[0])})`,
    );
  }
  const result = annotations.importAnnotations(sectionId, {
    labels,
    regions: [],
    replaceLabels: options.replace ?? false,
  });
  return { ...result, rows: parsed.labels.size, warnings };
}

export async function importCsv(
  annotations: Annotations,
  sectionId: number,
  file: string,
  options: CsvImportOptions,
): Promise<CsvImportReport> {
  const text = await readText(file);
  return importCsvText(annotations, sectionId, text, file, options);
}

// `delst inspect PATH [--json]`: what the readers make of a path, for users checking their data and for tests.

import { openSections } from '../core/readers/open.js';
import { labelCounts, type Section } from '../core/section/section.js';
import { progressBar } from './progress.js';

export interface SectionReport {
  name: string;
  format: string;
  source: string;
  /** In-tissue spots that have counts. */
  spots: number;
  genes: number;
  image: { width: number; height: number } | null;
  micronsPerPixel: number | null;
  spotDiameterMicrons: number;
  spotSpacingMicrons: number;
  labels: Record<string, Record<string, number>>;
  warnings: string[];
}

/**
 * One section gives one report; a folder with several gives `{ format, path, sections, errors }`, where `errors`
 * names the sections that could not be read.
 */
export type InspectReport =
  SectionReport | { format: string; path: string; sections: SectionReport[]; errors: string[] };

export async function inspectPath(path: string): Promise<InspectReport> {
  const progress = progressBar('reading');
  const { sections, failures } = await openSections(path, (done, total, name) =>
    progress.update(done, total, name),
  ).finally(() => progress.finish());
  const reports = sections.map(reportOf);
  if (reports.length === 1 && failures.length === 0) return reports[0];
  const formats = [...new Set(reports.map((r) => r.format))];
  const errors = failures.map((failure) => failure.message);
  return { format: formats.length === 1 ? formats[0] : 'mixed', path, sections: reports, errors };
}

export function reportOf(section: Section): SectionReport {
  const inTissue = (spot: number) => section.spots.inTissue[spot] === 1;
  return {
    name: section.name,
    format: section.format,
    source: section.source,
    spots: section.spots.inTissue.reduce((sum, v) => sum + v, 0),
    genes: section.genes.symbols.length,
    image: section.image ? { width: section.image.width, height: section.image.height } : null,
    micronsPerPixel: section.micronsPerPixel,
    spotDiameterMicrons: section.spotDiameterMicrons,
    spotSpacingMicrons: section.spotSpacingMicrons,
    labels: Object.fromEntries([...section.labels].map(([name, column]) => [name, labelCounts(column, inTissue)])),
    warnings: [...section.warnings],
  };
}

export function formatReport(report: InspectReport): string {
  if ('sections' in report) {
    const header = `${report.path}: ${report.sections.length} sections`;
    const errors = report.errors.map((error) => `not read: ${error}`);
    return [header, ...report.sections.map(formatSection), ...errors].join('\n\n');
  }
  return formatSection(report);
}

function formatSection(r: SectionReport): string {
  const lines = [
    `${r.name} (${r.format})  ${r.source}`,
    `  spots under tissue with counts  ${r.spots}`,
    `  genes                           ${r.genes}`,
    `  image                           ${r.image ? `${r.image.width} x ${r.image.height} px` : 'none'}`,
    `  microns per pixel               ${r.micronsPerPixel === null ? 'unknown' : r.micronsPerPixel.toFixed(4)}`,
    `  spot diameter / spacing         ${r.spotDiameterMicrons} um / ${r.spotSpacingMicrons} um`,
  ];
  for (const [column, classes] of Object.entries(r.labels)) {
    lines.push(`  labels: ${column}`);
    for (const [name, count] of Object.entries(classes)) lines.push(`    ${String(count).padStart(6)}  ${name}`);
  }
  for (const warning of r.warnings) lines.push(`  warning: ${warning}`);
  return lines.join('\n');
}

// QuPath-compatible GeoJSON: export a section's annotations, import QuPath's (and our own) exports.
//
// Export: a FeatureCollection in full-resolution image pixels (times `scale`), with
//   - spots as `objectType: 'detection'` features named after their spot id: 32-gon circles of the true spot
//     diameter when one is given, points otherwise; labelled ones carry `classification {name, color [r, g, b]}`;
//   - regions as `objectType: 'annotation'` features with their UUID, name and classification.
// Import, with QuPath's own leniency (qupath-core PathObjectTypeAdapters / GsonTools): a bare array of features as
// well as a FeatureCollection; `objectType`, `object_type` or `type` for the object type, annotation when missing;
// classification as {name, color}, {names: [...]} (a derived class, named "A: B" as QuPath shows it), the legacy
// {name, colorRGB, parentClass} form, or a bare string; v0.2 type names in `id`; child objects nested in
// `childObjects`. Then:
//   - a detection named after a spot of the section sets that spot's label (its class, or none when unclassified);
//   - an annotation with a class labels the spots whose centres fall inside it (holes excluded), except spots a
//     detection names; every polygon annotation is also kept as a region.
// So an export (which lists every spot) imports back to exactly the same labels and regions.

import { createHash } from 'node:crypto';
import { readText } from '../readers/files.js';
import { DataError } from '../readers/errors.js';
import { AnnotationError, colorToRgb, normalizeColor, type Annotations, type ImportResult } from './annotations.js';
import { writeFileAtomic } from '../atomic-write.js';
import {
  circleRing,
  GeometryError,
  mapGeometry,
  regionGeometry,
  spotsInside,
  type Position,
  type RegionGeometry,
  type SpotPositions,
} from './geometry.js';

// --- Export ---

export interface GeoJsonExportOptions {
  /** The section's spots (ids, centres in full-resolution pixels); without them only regions are exported. */
  readonly spots?: SpotPositions;
  /** True spot diameter in full-resolution pixels (55 um / mpp for Visium): spots become 32-gons; points without. */
  readonly spotDiameter?: number | null;
  /**
   * 'all' (default): every spot, unlabelled ones unclassified, so that importing the file gives back exactly this
   * state; 'labelled': labelled spots only (then unlabelled spots inside a classified region take its class on
   * import).
   */
  readonly include?: 'all' | 'labelled';
  /** Whether to export the regions (default true). */
  readonly regions?: boolean;
  /** Output pixels per full-resolution pixel (default 1), for an image QuPath opens at another resolution. */
  readonly scale?: number;
}

export interface GeoJsonFeature {
  type: 'Feature';
  id: string;
  geometry:
    | { type: 'Point'; coordinates: Position }
    | { type: 'Polygon'; coordinates: Position[][] }
    | { type: 'MultiPolygon'; coordinates: Position[][][] };
  properties: {
    objectType: 'detection' | 'annotation';
    name?: string;
    classification?: { name: string; color: [number, number, number] };
  };
}

export interface GeoJsonFeatureCollection {
  type: 'FeatureCollection';
  features: GeoJsonFeature[];
}

const SPOT_POLYGON_SIDES = 32;

/** A UUID (version 5 layout) derived from a name, so the same spot keeps the same id across exports. */
function nameUuid(namespace: string, name: string): string {
  const hex = createHash('sha1').update(namespace).update('\0').update(name).digest('hex').slice(0, 32).split('');
  hex[12] = '5';
  hex[16] = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** A section's annotations as a QuPath-compatible FeatureCollection. */
export function annotationsToGeoJson(
  annotations: Annotations,
  sectionId: number,
  options: GeoJsonExportOptions = {},
): GeoJsonFeatureCollection {
  const section = annotations.db.section(sectionId);
  if (!section) throw new AnnotationError(`no section ${sectionId} in this project`);
  const scale = options.scale ?? 1;
  if (!(scale > 0)) throw new AnnotationError(`scale must be positive, not ${scale}`);
  const diameter = options.spotDiameter ?? null;
  if (diameter !== null && !(diameter > 0))
    throw new AnnotationError(`spot diameter must be positive, not ${diameter}`);
  const classes = new Map(annotations.classes().map((c) => [c.id, c]));
  const classification = (classId: number | null) => {
    const cls = classId === null ? undefined : classes.get(classId);
    return cls ? { classification: { name: cls.name, color: colorToRgb(cls.color) } } : {};
  };
  const features: GeoJsonFeature[] = [];

  if (options.regions ?? true) {
    for (const region of annotations.regions(sectionId)) {
      const geometry = mapGeometry(region.geometry, ([x, y]) => [x * scale, y * scale]);
      features.push({
        type: 'Feature',
        id: region.id,
        geometry: geometry as GeoJsonFeature['geometry'],
        properties: {
          objectType: 'annotation',
          ...(region.name !== null ? { name: region.name } : {}),
          ...classification(region.classId),
        },
      });
    }
  }

  if (options.spots) {
    const labels = annotations.spotLabels(sectionId);
    const { ids, x, y } = options.spots;
    for (let i = 0; i < ids.length; i++) {
      const classId = labels.get(ids[i]) ?? null;
      if (classId === null && options.include === 'labelled') continue;
      const cx = x[i] * scale;
      const cy = y[i] * scale;
      const geometry: GeoJsonFeature['geometry'] =
        diameter === null
          ? { type: 'Point', coordinates: [cx, cy] }
          : {
              type: 'Polygon',
              coordinates: [
                circleRing(cx, cy, diameter * scale, SPOT_POLYGON_SIDES).map(([px, py]) => [round(px), round(py)]),
              ],
            };
      features.push({
        type: 'Feature',
        id: nameUuid(section.fingerprint, ids[i]),
        geometry,
        properties: { objectType: 'detection', name: ids[i], ...classification(classId) },
      });
    }
  }
  return { type: 'FeatureCollection', features };
}

/** Writes a section's annotations as GeoJSON (atomically); returns the number of features. */
export async function exportGeoJson(
  annotations: Annotations,
  sectionId: number,
  file: string,
  options: GeoJsonExportOptions = {},
): Promise<{ features: number }> {
  const collection = annotationsToGeoJson(annotations, sectionId, options);
  await writeFileAtomic(file, JSON.stringify(collection) + '\n');
  return { features: collection.features.length };
}

// --- Parsing ---

export type ObjectKind = 'annotation' | 'detection' | 'ignored';

export type FeatureShape =
  | { readonly kind: 'area'; readonly geometry: RegionGeometry }
  | { readonly kind: 'points'; readonly points: readonly Position[] }
  | { readonly kind: 'none'; readonly why: string };

export interface ParsedFeature {
  /** Where in the file: "feature 3", or "feature 3 > child 0" inside a QuPath hierarchy export. */
  readonly where: string;
  readonly objectType: ObjectKind;
  readonly id: string | null;
  readonly name: string | null;
  readonly className: string | null;
  readonly classColor: string | null;
  /** In the file's pixels. */
  readonly shape: FeatureShape;
}

export interface ParsedGeoJson {
  readonly features: readonly ParsedFeature[];
  readonly warnings: readonly string[];
}

/** QuPath v0.2 wrote the object type as the feature id. */
const LEGACY_TYPE_IDS: Record<string, ObjectKind> = {
  PathAnnotationObject: 'annotation',
  PathDetectionObject: 'detection',
  PathCellObject: 'detection',
  PathTileObject: 'detection',
  TMACoreObject: 'ignored',
  PathRootObject: 'ignored',
};

const OBJECT_TYPES: Record<string, ObjectKind> = {
  annotation: 'annotation',
  detection: 'detection',
  cell: 'detection',
  tile: 'detection',
  tmaCore: 'ignored',
  tma_core: 'ignored',
  root: 'ignored',
  ...LEGACY_TYPE_IDS,
};

/** Offset of the first JSON syntax error in `text` (only called once JSON.parse has failed). */
function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw new JsonSyntaxAt(i);
  };
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const string = () => {
    i++;
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        i++;
        return;
      }
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail();
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail();
      } else if (c < ' ') fail();
      else i++;
    }
    fail();
  };
  const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        string();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '"') return string();
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return;
      }
    }
    number.lastIndex = i;
    if (number.test(text)) {
      i = number.lastIndex;
      return;
    }
    fail();
  };
  try {
    value();
    ws();
    if (i < text.length) fail();
    return -1;
  } catch (error) {
    if (error instanceof JsonSyntaxAt) return error.offset;
    throw error;
  }
}

class JsonSyntaxAt {
  constructor(readonly offset: number) {}
}

/** Parses JSON, or throws a DataError giving the line and column of the first syntax error. */
export function parseJson(text: string, file: string): unknown {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') throw new DataError(file, 'is empty');
  try {
    return JSON.parse(body);
  } catch (error) {
    const offset = jsonErrorOffset(body);
    const reason = error instanceof Error ? error.message : String(error);
    if (offset < 0) throw new DataError(file, `is not valid JSON (${reason})`, { cause: error });
    const before = body.slice(0, offset).split('\n');
    const where =
      offset >= body.length ? 'unexpected end of file' : `line ${before.length}, column ${before.at(-1)!.length + 1}`;
    throw new DataError(file, `is not valid JSON: ${where} (${reason})`, { cause: error });
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A legacy packed colour (Java int, ARGB) as #rrggbb. */
function packedColor(value: number): string {
  return normalizeColor([(value >> 16) & 255, (value >> 8) & 255, value & 255])!;
}

/** Class name and colour of a QuPath classification, or null for "unclassified". */
function classification(
  value: unknown,
  fail: (problem: string) => never,
): { name: string; color: string | null } | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') {
    const name = value.trim();
    return name ? { name, color: null } : null;
  }
  if (!isObject(value)) return fail('classification is neither an object nor a string');
  if (Object.keys(value).length === 0) return null; // QuPath's NULL_CLASS
  let name: string | null = null;
  if (Array.isArray(value.names)) {
    const names = value.names.filter((n): n is string => typeof n === 'string' && n.trim() !== '');
    if (names.length !== value.names.length) fail('classification.names must be a list of class names');
    name = names.map((n) => n.trim()).join(': ');
  } else if (typeof value.name === 'string') {
    name = value.name.trim();
    if (value.parentClass !== undefined && value.parentClass !== null) {
      // Legacy (before v0.4) serialization of a derived class.
      const parent = classification(value.parentClass, fail);
      if (parent) name = `${parent.name}: ${name}`;
    }
  } else if (value.name !== undefined && value.name !== null) {
    fail('classification.name is not a string');
  }
  if (!name) return fail('classification has no name');
  let color: string | null = null;
  if (value.color !== undefined) color = normalizeColor(value.color);
  else if (typeof value.colorRGB === 'number') color = packedColor(value.colorRGB);
  return { name, color };
}

function shapeOf(geometry: unknown, fail: (problem: string) => never): FeatureShape {
  if (geometry === null || geometry === undefined) return { kind: 'none', why: 'it has no geometry' };
  if (!isObject(geometry)) return fail('geometry is not an object');
  const { type, coordinates } = geometry;
  const position = (value: unknown, what: string): Position => {
    if (
      !Array.isArray(value) ||
      value.length < 2 ||
      typeof value[0] !== 'number' ||
      typeof value[1] !== 'number' ||
      !Number.isFinite(value[0]) ||
      !Number.isFinite(value[1])
    ) {
      return fail(`${what} is not an [x, y] pair of numbers`);
    }
    return [value[0], value[1]];
  };
  switch (type) {
    case 'Point':
      return { kind: 'points', points: [position(coordinates, 'Point coordinates')] };
    case 'MultiPoint':
      if (!Array.isArray(coordinates)) return fail('MultiPoint coordinates are not a list of positions');
      return { kind: 'points', points: coordinates.map((p, i) => position(p, `MultiPoint position ${i}`)) };
    case 'Polygon':
    case 'MultiPolygon':
      try {
        return { kind: 'area', geometry: regionGeometry({ type, coordinates }) };
      } catch (error) {
        if (!(error instanceof GeometryError)) throw error;
        if (error.degenerate) return { kind: 'none', why: `its ${error.message}` };
        return fail(`geometry: ${error.message}`);
      }
    case 'GeometryCollection': {
      if (!Array.isArray(geometry.geometries)) return fail('GeometryCollection has no geometries list');
      const parts = geometry.geometries.map((g) => shapeOf(g, fail));
      const polygons = parts.flatMap((p) =>
        p.kind === 'area' ? (p.geometry.type === 'Polygon' ? [p.geometry.coordinates] : p.geometry.coordinates) : [],
      );
      if (polygons.length > 0) return { kind: 'area', geometry: { type: 'MultiPolygon', coordinates: polygons } };
      const points = parts.flatMap((p) => (p.kind === 'points' ? p.points : []));
      if (points.length > 0) return { kind: 'points', points };
      return { kind: 'none', why: 'its GeometryCollection holds no polygon or point' };
    }
    case 'LineString':
    case 'MultiLineString':
      return { kind: 'none', why: `a ${type} encloses no area` };
    default:
      return fail(`geometry type ${JSON.stringify(type)} is not a GeoJSON geometry`);
  }
}

/** Parses a QuPath (or any) GeoJSON text into features, with QuPath's leniency; bad files throw DataErrors. */
export function parseGeoJson(text: string, file: string): ParsedGeoJson {
  const json = parseJson(text, file);
  let list: unknown[];
  if (Array.isArray(json)) list = json;
  else if (isObject(json) && Array.isArray(json.features)) list = json.features;
  else if (isObject(json) && json.type === 'Feature') list = [json];
  else {
    throw new DataError(
      file,
      'is not GeoJSON annotations: expected a FeatureCollection, a Feature or a list of features',
    );
  }
  const features: ParsedFeature[] = [];
  const warnings: string[] = [];
  const visit = (value: unknown, where: string) => {
    const fail = (problem: string): never => {
      throw new DataError(file, `${where}: ${problem}`);
    };
    if (!isObject(value)) return fail('is not a GeoJSON feature object');
    const properties = value.properties ?? {};
    if (!isObject(properties)) return fail('properties is not an object');
    const rawId = typeof value.id === 'string' || typeof value.id === 'number' ? String(value.id) : null;
    const typeName = properties.objectType ?? properties.object_type ?? properties.type;
    let objectType: ObjectKind;
    if (typeName === undefined || typeName === null) {
      objectType = rawId !== null && rawId in LEGACY_TYPE_IDS ? LEGACY_TYPE_IDS[rawId] : 'annotation';
    } else if (typeof typeName === 'string' && typeName in OBJECT_TYPES) {
      objectType = OBJECT_TYPES[typeName];
    } else {
      warnings.push(
        `${where}: unknown object type ${JSON.stringify(typeName)}, read as an annotation (as QuPath does)`,
      );
      objectType = 'annotation';
    }
    const name =
      typeof properties.name === 'string' || typeof properties.name === 'number' ? String(properties.name) : null;
    const cls = classification(properties.classification, fail);
    features.push({
      where,
      objectType,
      id: rawId !== null && !(rawId in LEGACY_TYPE_IDS) ? rawId : null,
      name,
      className: cls?.name ?? null,
      classColor: cls?.color ?? null,
      shape: shapeOf(value.geometry, fail),
    });
    const children = properties.childObjects ?? properties.children;
    if (Array.isArray(children)) children.forEach((child, i) => visit(child, `${where} > child ${i}`));
  };
  list.forEach((feature, i) => visit(feature, `feature ${i}`));
  return { features, warnings };
}

// --- Import ---

export interface GeoJsonImportOptions {
  /** The section's spots: detections are matched by name, annotations by the spot centres they enclose. */
  readonly spots: SpotPositions;
  /** Spot diameter in full-resolution pixels: lets a point annotation (QuPath's points tool) label the spot under it. */
  readonly spotDiameter?: number | null;
  /** File pixels per full-resolution pixel (default 1); the same `scale` as the export's. */
  readonly scale?: number;
  /** Clear the section's labels and regions first (default false: the file's annotations go over the existing). */
  readonly replace?: boolean;
}

export interface GeoJsonImportReport extends ImportResult {
  readonly features: number;
  /** Detections named after a spot of the section. */
  readonly detectionsMatched: number;
  /** Spots labelled through annotations (centre inside a classified polygon, or under a classified point). */
  readonly spotsInAnnotations: number;
  readonly warnings: readonly string[];
}

/** Imports QuPath GeoJSON text into a section, as one change (undo takes it back). */
export function importGeoJsonText(
  annotations: Annotations,
  sectionId: number,
  text: string,
  file: string,
  options: GeoJsonImportOptions,
): GeoJsonImportReport {
  const parsed = parseGeoJson(text, file);
  const warnings = [...parsed.warnings];
  const scale = options.scale ?? 1;
  if (!(scale > 0)) throw new AnnotationError(`scale must be positive, not ${scale}`);
  const toFullRes = ([x, y]: Position): Position => (scale === 1 ? [x, y] : [x / scale, y / scale]);
  const { spots } = options;
  const spotIndex = new Map(spots.ids.map((id, i) => [id, i]));

  // Classes in the order the file names them, with the first colour it gives each.
  const classes = new Map<string, string | null>();
  for (const f of parsed.features) {
    if (f.className !== null && (classes.get(f.className) ?? null) === null) classes.set(f.className, f.classColor);
  }

  // Detections first: they name their spot, and win over any annotation around it.
  const fromDetections = new Map<string, string | null>();
  let detections = 0;
  const unmatched: string[] = [];
  for (const f of parsed.features) {
    if (f.objectType !== 'detection') continue;
    detections++;
    if (f.name === null || !spotIndex.has(f.name)) {
      unmatched.push(f.name ?? `(unnamed, ${f.where})`);
      continue;
    }
    fromDetections.set(f.name, f.className);
  }

  const labels = new Map<string, string | null>();
  const regions: { id: string | null; geometry: RegionGeometry; className: string | null; name: string | null }[] = [];
  const radius = options.spotDiameter ? options.spotDiameter / 2 : null;
  let pointsWithoutDiameter = 0;
  const skipped = new Map<string, number>();
  for (const f of parsed.features) {
    if (f.objectType === 'ignored') {
      skipped.set('TMA cores and root objects', (skipped.get('TMA cores and root objects') ?? 0) + 1);
      continue;
    }
    if (f.shape.kind === 'none') {
      skipped.set(f.shape.why, (skipped.get(f.shape.why) ?? 0) + 1);
      continue;
    }
    if (f.objectType !== 'annotation') continue;
    if (f.shape.kind === 'area') {
      const geometry = mapGeometry(f.shape.geometry, toFullRes);
      regions.push({ id: f.id, geometry, className: f.className, name: f.name });
      if (f.className !== null) {
        for (const i of spotsInside(geometry, spots)) labels.set(spots.ids[i], f.className);
      }
    } else if (f.className !== null) {
      if (radius === null) {
        pointsWithoutDiameter++;
        continue;
      }
      for (const point of f.shape.points) {
        const [px, py] = toFullRes(point);
        let best = -1;
        let bestDistance = radius * radius;
        for (let i = 0; i < spots.ids.length; i++) {
          const d = (spots.x[i] - px) ** 2 + (spots.y[i] - py) ** 2;
          if (d <= bestDistance) {
            best = i;
            bestDistance = d;
          }
        }
        if (best >= 0) labels.set(spots.ids[best], f.className);
      }
    }
  }
  let spotsInAnnotations = 0;
  for (const spot of labels.keys()) if (!fromDetections.has(spot)) spotsInAnnotations++;
  for (const [spot, name] of fromDetections) labels.set(spot, name);

  if (unmatched.length > 0) {
    if (unmatched.length === detections && regions.length === 0 && labels.size === 0) {
      throw new DataError(
        file,
        `none of its ${detections} detections is named after a spot of this section (first: ${JSON.stringify(unmatched[0])}); is it for another section?`,
      );
    }
    warnings.push(
      `${unmatched.length} of ${detections} detections are not named after a spot of this section and were skipped (first: ${JSON.stringify(unmatched[0])})`,
    );
  }
  for (const [why, n] of skipped) warnings.push(`${n} feature${n === 1 ? '' : 's'} skipped: ${why}`);
  if (pointsWithoutDiameter > 0) {
    warnings.push(`${pointsWithoutDiameter} point annotations skipped: no spot diameter to match them to spots`);
  }

  const result = annotations.importAnnotations(sectionId, {
    labels,
    regions,
    classes,
    replaceLabels: options.replace ?? false,
    replaceRegions: options.replace ?? false,
  });
  return {
    ...result,
    features: parsed.features.length,
    detectionsMatched: fromDetections.size,
    spotsInAnnotations,
    warnings,
  };
}

/** Imports a QuPath GeoJSON file into a section, as one change. */
export async function importGeoJson(
  annotations: Annotations,
  sectionId: number,
  file: string,
  options: GeoJsonImportOptions,
): Promise<GeoJsonImportReport> {
  const text = await readText(file);
  return importGeoJsonText(annotations, sectionId, text, file, options);
}

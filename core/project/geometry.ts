// Plane geometry for annotations, in full-resolution image pixels (x right, y down): region validation, point in
// polygon (holes included), spot circles as polygons.

export type Position = [number, number];
/** Rings: the outer boundary first, then holes; each ring closed (first position = last). */
export type PolygonCoordinates = Position[][];

export interface PolygonGeometry {
  readonly type: 'Polygon';
  readonly coordinates: PolygonCoordinates;
}

export interface MultiPolygonGeometry {
  readonly type: 'MultiPolygon';
  readonly coordinates: PolygonCoordinates[];
}

/** The geometry of a free region. */
export type RegionGeometry = PolygonGeometry | MultiPolygonGeometry;

/** Spot centres in full-resolution pixels, as `Section.spots` has them. */
export interface SpotPositions {
  readonly ids: readonly string[];
  readonly x: ArrayLike<number>;
  readonly y: ArrayLike<number>;
}

export class GeometryError extends Error {
  /** True for a well-formed but empty shape (a ring without area, a polygon without rings). */
  readonly degenerate: boolean;

  constructor(message: string, degenerate = false) {
    super(message);
    this.name = 'GeometryError';
    this.degenerate = degenerate;
  }
}

function position(value: unknown, where: string): Position {
  if (!Array.isArray(value) || value.length < 2) throw new GeometryError(`${where} is not an [x, y] position`);
  const [x, y] = value;
  if (typeof x !== 'number' || typeof y !== 'number' || !Number.isFinite(x) || !Number.isFinite(y)) {
    throw new GeometryError(`${where} is not an [x, y] pair of finite numbers`);
  }
  return [x, y];
}

/** A ring as closed positions; throws when it is not one (fewer than three distinct corners, bad numbers). */
function ring(value: unknown, where: string): Position[] {
  if (!Array.isArray(value)) throw new GeometryError(`${where} is not an array of positions`);
  const points = value.map((p, i) => position(p, `${where}, position ${i}`));
  const first = points[0];
  const last = points[points.length - 1];
  if (first && (first[0] !== last[0] || first[1] !== last[1])) points.push([first[0], first[1]]);
  const distinct = new Set(points.map(([x, y]) => `${x},${y}`));
  if (points.length < 4 || distinct.size < 3)
    throw new GeometryError(`${where} has fewer than 3 distinct corners`, true);
  return points;
}

function polygon(value: unknown, where: string): PolygonCoordinates {
  if (!Array.isArray(value)) throw new GeometryError(`${where} is not a list of rings`);
  if (value.length === 0) throw new GeometryError(`${where} has no rings`, true);
  return value.map((r, i) => ring(r, i === 0 ? `${where} outer ring` : `${where} hole ${i}`));
}

/** Validates a Polygon or MultiPolygon (closing open rings), or throws a GeometryError saying what is wrong. */
export function regionGeometry(value: unknown): RegionGeometry {
  if (typeof value !== 'object' || value === null) throw new GeometryError('geometry is not an object');
  const { type, coordinates } = value as { type?: unknown; coordinates?: unknown };
  if (type === 'Polygon') return { type, coordinates: polygon(coordinates, 'polygon') };
  if (type === 'MultiPolygon') {
    if (!Array.isArray(coordinates)) throw new GeometryError('multipolygon is not a list of polygons');
    if (coordinates.length === 0) throw new GeometryError('multipolygon has no polygons', true);
    return { type, coordinates: coordinates.map((p, i) => polygon(p, `polygon ${i}`)) };
  }
  throw new GeometryError(`geometry type ${JSON.stringify(type)} is not a Polygon or MultiPolygon`);
}

export function polygonsOf(geometry: RegionGeometry): readonly PolygonCoordinates[] {
  return geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.coordinates;
}

/** Even-odd rule: whether (x, y) lies inside a closed ring. */
export function pointInRing(x: number, y: number, ring: readonly Position[]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Inside the outer ring and in no hole. */
export function pointInPolygon(x: number, y: number, polygon: PolygonCoordinates): boolean {
  if (!pointInRing(x, y, polygon[0])) return false;
  for (let h = 1; h < polygon.length; h++) if (pointInRing(x, y, polygon[h])) return false;
  return true;
}

export function pointInGeometry(x: number, y: number, geometry: RegionGeometry): boolean {
  return polygonsOf(geometry).some((p) => pointInPolygon(x, y, p));
}

export interface Box {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
}

export function bounds(geometry: RegionGeometry): Box {
  const box = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
  for (const p of polygonsOf(geometry)) {
    for (const [x, y] of p[0]) {
      box.minX = Math.min(box.minX, x);
      box.minY = Math.min(box.minY, y);
      box.maxX = Math.max(box.maxX, x);
      box.maxY = Math.max(box.maxY, y);
    }
  }
  return box;
}

/** Indices of the spots whose centre lies inside the geometry. */
export function spotsInside(geometry: RegionGeometry, spots: SpotPositions): number[] {
  const box = bounds(geometry);
  const inside: number[] = [];
  for (let i = 0; i < spots.ids.length; i++) {
    const x = spots.x[i];
    const y = spots.y[i];
    if (x < box.minX || x > box.maxX || y < box.minY || y > box.maxY) continue;
    if (pointInGeometry(x, y, geometry)) inside.push(i);
  }
  return inside;
}

/** A circle as a closed polygon ring of `sides` corners on the circle (counter-clockwise in y-down pixels). */
export function circleRing(cx: number, cy: number, diameter: number, sides = 32): Position[] {
  const r = diameter / 2;
  const points: Position[] = [];
  for (let i = 0; i < sides; i++) {
    const a = (2 * Math.PI * i) / sides;
    points.push([cx + r * Math.cos(a), cy + r * Math.sin(a)]);
  }
  points.push([points[0][0], points[0][1]]);
  return points;
}

/** Every position of a geometry mapped through `f` (scaling between image resolutions). */
export function mapGeometry(geometry: RegionGeometry, f: (p: Position) => Position): RegionGeometry {
  const mapPolygon = (p: PolygonCoordinates) => p.map((r) => r.map(f));
  return geometry.type === 'Polygon'
    ? { type: 'Polygon', coordinates: mapPolygon(geometry.coordinates) }
    : { type: 'MultiPolygon', coordinates: geometry.coordinates.map(mapPolygon) };
}

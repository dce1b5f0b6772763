// Slide pixels -> viewer-element (CSS) pixels: an affine map, read from OpenSeadragon once per frame instead of
// once per spot.

import OpenSeadragon from 'openseadragon';

export interface ViewTransform {
  /** screen = o + (ax, ay) * slideX + (bx, by) * slideY, in CSS pixels of the viewer element. */
  readonly ox: number;
  readonly oy: number;
  readonly ax: number;
  readonly ay: number;
  readonly bx: number;
  readonly by: number;
  /** Screen pixels per slide pixel. */
  readonly scale: number;
  /** The element's size in CSS pixels. */
  readonly width: number;
  readonly height: number;
  /** Device pixels per CSS pixel. */
  readonly ratio: number;
}

/** The viewer's current transform for its first image, or null before one is open. */
export function viewTransform(viewer: OpenSeadragon.Viewer, width: number, height: number): ViewTransform | null {
  if (viewer.world.getItemCount() === 0) return null;
  const image = viewer.world.getItemAt(0);
  const o = image.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
  const ex = image.imageToViewerElementCoordinates(new OpenSeadragon.Point(1000, 0));
  const ey = image.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 1000));
  const [ax, ay, bx, by] = [(ex.x - o.x) / 1000, (ex.y - o.y) / 1000, (ey.x - o.x) / 1000, (ey.y - o.y) / 1000];
  return {
    ox: o.x,
    oy: o.y,
    ax,
    ay,
    bx,
    by,
    scale: Math.hypot(ax, ay),
    width,
    height,
    ratio: Math.min(window.devicePixelRatio || 1, 2),
  };
}

export function sameTransform(a: ViewTransform | null, b: ViewTransform | null): boolean {
  return (
    a !== null &&
    b !== null &&
    a.ox === b.ox &&
    a.oy === b.oy &&
    a.ax === b.ax &&
    a.ay === b.ay &&
    a.bx === b.bx &&
    a.by === b.by &&
    a.width === b.width &&
    a.height === b.height &&
    a.ratio === b.ratio
  );
}

/** Screen (CSS px in the element) -> slide pixels. */
export function screenToSlide(view: ViewTransform, sx: number, sy: number): { x: number; y: number } {
  const det = view.ax * view.by - view.bx * view.ay;
  const dx = sx - view.ox;
  const dy = sy - view.oy;
  return { x: (view.by * dx - view.bx * dy) / det, y: (view.ax * dy - view.ay * dx) / det };
}

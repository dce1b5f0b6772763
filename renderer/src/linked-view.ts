// Linked views (Compare): a viewport as fractions of its image, so two slides of different sizes can show "the
// same place": the centre as a fraction of the image's width and height, and OpenSeadragon's zoom (1 = the
// image's width fills the viewer's width).

export interface LinkedView {
  /** Which view it came from (a view does not apply its own). */
  readonly from: string;
  /** Centre, as fractions of the image width and height. */
  readonly cx: number;
  readonly cy: number;
  readonly zoom: number;
}

const TOLERANCE = 1e-6;

/** Whether two views show the same place (an applied view echoing back must not be sent on again). */
export function sameView(a: LinkedView | null, b: LinkedView | null): boolean {
  if (!a || !b) return false;
  return (
    Math.abs(a.cx - b.cx) < TOLERANCE &&
    Math.abs(a.cy - b.cy) < TOLERANCE &&
    Math.abs(a.zoom - b.zoom) <= TOLERANCE * Math.max(1, Math.abs(a.zoom))
  );
}

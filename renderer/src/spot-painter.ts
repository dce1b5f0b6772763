// What the spot overlay needs from a drawing backend (WebGL2 or canvas 2D): positions once, colours per
// colour change, and a paint per frame.

import type { ViewTransform } from './view-transform.js';

export type PainterKind = 'webgl' | 'canvas';

export interface PaintStyle {
  /** Spot radius on screen, CSS pixels (true size, never under the minimum). */
  readonly radius: number;
  /** Fill opacity, 0..1. */
  readonly opacity: number;
  /** Index of the selected spot (drawn with a ring), or -1. */
  readonly selected: number;
}

export interface SpotPainter {
  readonly kind: PainterKind;
  readonly canvas: HTMLCanvasElement;
  /** Spot centres in slide pixels, interleaved x, y. */
  setPositions(xy: Float32Array): void;
  /** RGBA8 per spot; alpha FILLED, OUTLINE or HIDDEN (spot-colours.ts). */
  setColours(colours: Uint8Array): void;
  paint(view: ViewTransform, style: PaintStyle): void;
  clear(): void;
  destroy(): void;
}

/** Sizes a canvas's backing store to its element at the device ratio; true when it changed. */
export function fitCanvas(canvas: HTMLCanvasElement, view: ViewTransform): boolean {
  const width = Math.max(1, Math.round(view.width * view.ratio));
  const height = Math.max(1, Math.round(view.height * view.ratio));
  if (canvas.width === width && canvas.height === height) return false;
  canvas.width = width;
  canvas.height = height;
  return true;
}

/** The dark ring of outline-only spots and of the selection, and its light halo. */
export const RING_RGB = [17, 24, 39] as const;

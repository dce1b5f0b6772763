// Spots over the OpenSeadragon viewer, in lock-step with its viewport: a canvas of our own laid over the viewer,
// painted with WebGL2 (instanced SDF circles) or canvas 2D (CPU stamps; where WebGL2 is missing or software).
// Spots are drawn at their true diameter in slide pixels, never under MIN_DIAMETER_PX on screen.
//
// For tests and benchmarks the host element carries: data-overlay-renderer (webgl|canvas), data-spots-drawn (spots
// on screen in the last frame), data-draw-ms (CPU time of the last frame), data-first-spots-ms (page time of the
// first frame with spots), data-view (the slide -> screen transform `ox,oy,ax,ay,bx,by` in CSS px, so tests can
// find a spot on screen).

import type OpenSeadragon from 'openseadragon';
import { CanvasSpotPainter } from './canvas-spots.js';
import type { PainterKind, SpotPainter } from './spot-painter.js';
import { HIDDEN } from './spot-colours.js';
import { sameTransform, viewTransform, type ViewTransform } from './view-transform.js';
import { WebGlSpotPainter } from './webgl-spots.js';

export const MIN_DIAMETER_PX = 2;
const FALLBACK_DIAMETER_PX = 8;

export class SpotOverlay {
  readonly kind: PainterKind;
  private readonly painter: SpotPainter;
  private readonly handlers: Array<[keyof OpenSeadragon.ViewerEventMap, () => void]> = [];
  private xy: Float32Array = new Float32Array(0);
  private diameter: number | null = null;
  private colours: Uint8Array = new Uint8Array(0);
  /** Spots not hidden: what a frame counts. */
  private shown: Int32Array = new Int32Array(0);
  private opacity = 0.8;
  private visible = true;
  private selected = -1;
  private last: ViewTransform | null = null;
  private dirty = true;
  private frame = 0;

  /** Spots on screen in the last frame. */
  drawn = 0;
  /** Hears every new view (pan, zoom, resize): scale bars and hover follow it. */
  onview: ((view: ViewTransform) => void) | null = null;

  constructor(
    private readonly viewer: OpenSeadragon.Viewer,
    /** Holds the overlay canvas (positioned over the viewer, same size). */
    private readonly container: HTMLElement,
    /** Gets the data attributes. */
    private readonly host: HTMLElement,
    prefer: PainterKind,
  ) {
    this.painter = createPainter(container, prefer, () => this.invalidate());
    this.kind = this.painter.kind;
    host.dataset.overlayRenderer = this.kind;
    const redraw = () => this.draw();
    // update-viewport follows each frame OpenSeadragon draws, so spots move with the tiles, not a frame behind.
    for (const event of ['update-viewport', 'resize', 'open'] as const) {
      viewer.addHandler(event, redraw);
      this.handlers.push([event, redraw]);
    }
  }

  /** Spot centres and diameter in slide pixels (diameter null: a fixed screen size). */
  setSpots(x: readonly number[], y: readonly number[], diameter: number | null): void {
    const xy = new Float32Array(x.length * 2);
    for (let i = 0; i < x.length; i++) {
      xy[2 * i] = x[i];
      xy[2 * i + 1] = y[i];
    }
    this.xy = xy;
    this.diameter = diameter;
    this.colours = new Uint8Array(x.length * 4);
    this.shown = new Int32Array(0);
    this.painter.setPositions(xy);
    this.invalidate();
  }

  /** New colours (RGBA8 per spot), painted at once. */
  setColours(colours: Uint8Array): void {
    this.colours = colours;
    let n = 0;
    const shown = new Int32Array(colours.length / 4);
    for (let i = 0; i < shown.length; i++) if (colours[i * 4 + 3] !== HIDDEN) shown[n++] = i;
    this.shown = shown.subarray(0, n);
    this.painter.setColours(colours);
    this.dirty = true;
    this.draw();
  }

  setOpacity(opacity: number): void {
    this.opacity = opacity;
    this.invalidate();
  }

  setVisible(visible: boolean): void {
    this.visible = visible;
    this.invalidate();
  }

  setSelected(spot: number): void {
    this.selected = spot;
    this.invalidate();
  }

  /** The view of the last frame, or null before the slide opened. */
  get view(): ViewTransform | null {
    return this.last;
  }

  /** Spot radius on screen (CSS px) in a view. */
  radius(view: ViewTransform): number {
    const diameter = this.diameter === null ? FALLBACK_DIAMETER_PX : this.diameter * view.scale;
    return Math.max(diameter, MIN_DIAMETER_PX) / 2;
  }

  /** Whether a spot is drawn now (not hidden by its colouring, spots on). */
  isShown(spot: number): boolean {
    return this.visible && this.colours[spot * 4 + 3] !== HIDDEN;
  }

  /** Redraw on the next frame (coalesces bursts of changes). */
  invalidate(): void {
    this.dirty = true;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  destroy(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    for (const [event, handler] of this.handlers) this.viewer.removeHandler(event, handler);
    this.handlers.length = 0;
    this.painter.destroy();
  }

  draw(): void {
    const view = viewTransform(this.viewer, this.container.clientWidth, this.container.clientHeight);
    if (!view) return;
    // OpenSeadragon also fires update-viewport when tiles arrive: nothing to redraw if the view stayed put.
    if (!this.dirty && sameTransform(view, this.last)) return;
    const start = performance.now();
    this.dirty = false;
    this.last = view;
    let drawn = 0;
    if (this.visible && this.shown.length > 0) {
      const radius = this.radius(view);
      const selected = this.selected >= 0 && this.isShown(this.selected) ? this.selected : -1;
      this.painter.paint(view, { radius, opacity: this.opacity, selected });
      drawn = this.countOnScreen(view, radius);
    } else {
      this.painter.clear();
    }
    this.drawn = drawn;
    const { dataset } = this.host;
    dataset.spotsDrawn = String(drawn);
    dataset.drawMs = (performance.now() - start).toFixed(2);
    dataset.view = [view.ox, view.oy, view.ax, view.ay, view.bx, view.by].map((v) => v.toPrecision(8)).join(',');
    if (drawn > 0 && !dataset.firstSpotsMs) dataset.firstSpotsMs = performance.now().toFixed(1);
    this.onview?.(view);
  }

  private countOnScreen(view: ViewTransform, r: number): number {
    const { ox, oy, ax, ay, bx, by, width, height } = view;
    const { xy, shown } = this;
    let n = 0;
    for (let k = 0; k < shown.length; k++) {
      const x = xy[2 * shown[k]];
      const y = xy[2 * shown[k] + 1];
      const sx = ox + ax * x + bx * y;
      const sy = oy + ay * x + by * y;
      if (sx >= -r && sy >= -r && sx <= width + r && sy <= height + r) n++;
    }
    return n;
  }
}

/** WebGL2 when asked for and it works (a context, shaders compiled); canvas 2D otherwise. */
function createPainter(container: HTMLElement, prefer: PainterKind, restored: () => void): SpotPainter {
  const make = () => {
    const canvas = document.createElement('canvas');
    canvas.className = 'spot-canvas';
    canvas.style.cssText = 'position:absolute;inset:0;width:100%;height:100%;pointer-events:none';
    container.append(canvas);
    return canvas;
  };
  if (prefer === 'webgl') {
    const canvas = make();
    try {
      return new WebGlSpotPainter(canvas, restored);
    } catch (error) {
      canvas.remove();
      console.info(`spot overlay: canvas 2D (${error instanceof Error ? error.message : String(error)})`);
    }
  }
  return new CanvasSpotPainter(make());
}

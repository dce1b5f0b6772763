// Spots drawn as circles on a 2D canvas laid over the OpenSeadragon viewer, at their true diameter in slide
// pixels (never under 2 screen pixels), redrawn whenever the viewport moves. Canvas 2D batched by colour is
// fast enough for the ~1k-5k spots of ST/Visium sections; larger layers would move to WebGL.

import OpenSeadragon from 'openseadragon';

/** Spots that share a style: drawn in one path. `color` null = outline only. */
export interface SpotGroup {
  readonly color: string | null;
  readonly indices: readonly number[];
}

export interface SpotLayer {
  /** Spot centres in slide (pyramid level-max) pixels. */
  readonly x: readonly number[];
  readonly y: readonly number[];
  /** True spot diameter in slide pixels; null draws a fixed screen size. */
  readonly diameter: number | null;
  readonly groups: readonly SpotGroup[];
}

const MIN_DIAMETER_PX = 2;
const FALLBACK_DIAMETER_PX = 8;
const FILL_ALPHA = 0.55;
const OUTLINE = 'rgba(17, 24, 39, 0.9)';
const HALO = 'rgba(255, 255, 255, 0.75)';

export class SpotOverlay {
  private readonly context: CanvasRenderingContext2D;
  private layer: SpotLayer | null = null;
  private frame = 0;
  private readonly handlers: Array<[keyof OpenSeadragon.ViewerEventMap, () => void]> = [];

  /** How many spots the last draw put on screen (exposed as `data-spots-drawn` on `host`). */
  drawn = 0;

  constructor(
    private readonly viewer: OpenSeadragon.Viewer,
    private readonly canvas: HTMLCanvasElement,
    private readonly host: HTMLElement,
  ) {
    const context = canvas.getContext('2d');
    if (!context) throw new Error('no 2D canvas context');
    this.context = context;
    const redraw = () => this.draw();
    for (const event of ['update-viewport', 'animation', 'resize', 'open'] as const) {
      viewer.addHandler(event, redraw);
      this.handlers.push([event, redraw]);
    }
  }

  setLayer(layer: SpotLayer | null): void {
    this.layer = layer;
    this.schedule();
  }

  /** Redraw on the next frame (coalesces bursts of changes). */
  schedule(): void {
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
  }

  draw(): void {
    const { canvas, context: ctx } = this;
    const width = this.host.clientWidth;
    const height = this.host.clientHeight;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);

    const image = this.viewer.world.getItemCount() > 0 ? this.viewer.world.getItemAt(0) : null;
    const layer = this.layer;
    let drawn = 0;
    if (image && layer) {
      // Slide pixels -> viewer-element pixels is affine: measure it once per frame instead of per spot.
      const o = image.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
      const ex = image.imageToViewerElementCoordinates(new OpenSeadragon.Point(1, 0));
      const ey = image.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 1));
      const [ax, bx, ay, by] = [ex.x - o.x, ey.x - o.x, ex.y - o.y, ey.y - o.y];
      const scale = Math.hypot(ax, ay);
      const diameter =
        layer.diameter === null ? FALLBACK_DIAMETER_PX : Math.max(layer.diameter * scale, MIN_DIAMETER_PX);
      const r = diameter / 2;
      const lineWidth = diameter < 6 ? 0.75 : 1.25;
      for (const group of layer.groups) {
        ctx.beginPath();
        let count = 0;
        for (const i of group.indices) {
          const sx = o.x + ax * layer.x[i] + bx * layer.y[i];
          const sy = o.y + ay * layer.x[i] + by * layer.y[i];
          if (sx < -r || sy < -r || sx > width + r || sy > height + r) continue;
          ctx.moveTo(sx + r, sy);
          ctx.arc(sx, sy, r, 0, 2 * Math.PI);
          count++;
        }
        if (count === 0) continue;
        if (group.color === null) {
          // A dark ring on a light halo reads on both pale stroma and dense, dark tumour.
          ctx.lineWidth = lineWidth + 1.5;
          ctx.strokeStyle = HALO;
          ctx.stroke();
          ctx.lineWidth = lineWidth;
          ctx.strokeStyle = OUTLINE;
          ctx.stroke();
        } else {
          ctx.globalAlpha = FILL_ALPHA;
          ctx.fillStyle = group.color;
          ctx.fill();
          ctx.globalAlpha = 1;
          ctx.lineWidth = lineWidth;
          ctx.strokeStyle = group.color;
          ctx.stroke();
        }
        drawn += count;
      }
    }
    this.drawn = drawn;
    this.host.dataset.spotsDrawn = String(drawn);
  }
}

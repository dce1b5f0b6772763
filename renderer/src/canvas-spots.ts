// Canvas 2D spot painter, for browsers without WebGL2 or with only a software one (where it is the faster of the
// two: 100k instanced quads take ~1.5 s a frame on SwiftShader). Spots are stamped into one ImageData on the CPU
// and put on the canvas in a single call: every spot of a frame has the same on-screen radius, so one coverage
// mask per frame serves them all, and as spots do not overlap at true size, a frame costs about one write per
// covered pixel, where filling 100k circles as paths costs ~300 ms. Where spots touch (the minimum size, dense
// sections) the more opaque pixel wins: no blending, so no colour of one spot bleeds into the next.
// Spots bigger than STAMP_MAX_RADIUS are few on screen: they are drawn as arcs instead of building huge stamps.

import { OUTLINE } from './spot-colours.js';
import { fitCanvas, RING_RGB, type PaintStyle, type SpotPainter } from './spot-painter.js';
import type { ViewTransform } from './view-transform.js';

/** Device pixels: beyond this radius spots are drawn as paths. */
const STAMP_MAX_RADIUS = 48;

/** A spot's pixels for one frame's radius: offsets from the centre pixel and what goes there, non-empty only. */
interface Stamp {
  readonly dx: Int16Array;
  readonly dy: Int16Array;
  /** Filled spots: alpha 0..255 (the disc at the chosen opacity, the rim above it). Outlines: ABGR pixels. */
  readonly value: Uint32Array;
  /** How far the stamp reaches from the centre. */
  readonly half: number;
}

interface Stamps {
  readonly key: string;
  readonly fill: Stamp;
  readonly outline: Stamp;
}

const RING = `rgb(${RING_RGB.join(',')})`;

export class CanvasSpotPainter implements SpotPainter {
  readonly kind = 'canvas';
  private readonly context: CanvasRenderingContext2D;
  private xy: Float32Array = new Float32Array(0);
  private colours: Uint8Array = new Uint8Array(0);
  private image: ImageData | null = null;
  private pixels: Uint32Array = new Uint32Array(0);
  private stamps: Stamps | null = null;

  constructor(readonly canvas: HTMLCanvasElement) {
    const context = canvas.getContext('2d');
    if (!context) throw new Error('no 2D canvas context');
    this.context = context;
  }

  setPositions(xy: Float32Array): void {
    this.xy = xy;
  }

  setColours(colours: Uint8Array): void {
    this.colours = colours;
  }

  paint(view: ViewTransform, style: PaintStyle): void {
    const { canvas, context: ctx, xy } = this;
    fitCanvas(canvas, view);
    const width = canvas.width;
    const height = canvas.height;
    if (!this.image || this.image.width !== width || this.image.height !== height) {
      this.image = ctx.createImageData(width, height);
      this.pixels = new Uint32Array(this.image.data.buffer);
    }
    const k = view.ratio;
    if (style.radius * k > STAMP_MAX_RADIUS) {
      this.paintPaths(view, style);
    } else {
      this.paintStamps(view, style);
      ctx.putImageData(this.image, 0, 0);
    }
    if (style.selected >= 0 && style.selected < xy.length / 2) {
      const x = xy[2 * style.selected];
      const y = xy[2 * style.selected + 1];
      const sx = view.ox + view.ax * x + view.bx * y;
      const sy = view.oy + view.ay * x + view.by * y;
      ctx.setTransform(k, 0, 0, k, 0, 0);
      ctx.beginPath();
      ctx.arc(sx, sy, style.radius + 2.5, 0, 2 * Math.PI);
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = '#ffffff';
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(sx, sy, style.radius + 4.5, 0, 2 * Math.PI);
      ctx.lineWidth = 2;
      ctx.strokeStyle = RING;
      ctx.stroke();
      ctx.setTransform(1, 0, 0, 1, 0, 0);
    }
  }

  private paintStamps(view: ViewTransform, style: PaintStyle): void {
    const { xy, colours, pixels } = this;
    const { width, height } = this.canvas;
    pixels.fill(0);
    const k = view.ratio;
    const { fill, outline } = this.stampsFor(style.radius * k, style.opacity, k);
    const fillAt = Int32Array.from(fill.dx, (dx, j) => fill.dy[j] * width + dx);
    const outlineAt = Int32Array.from(outline.dx, (dx, j) => outline.dy[j] * width + dx);
    const fillAlpha = fill.value;
    const outlinePixels = outline.value;
    const half = Math.max(fill.half, outline.half);
    const [ox, oy, ax, ay, bx, by] = [view.ox * k, view.oy * k, view.ax * k, view.ay * k, view.bx * k, view.by * k];
    const n = xy.length / 2;
    for (let i = 0; i < n; i++) {
      const a = colours[i * 4 + 3];
      if (a === 0) continue;
      const x = xy[2 * i];
      const y = xy[2 * i + 1];
      const cx = Math.round(ox + ax * x + bx * y);
      const cy = Math.round(oy + ay * x + by * y);
      if (cx < -half || cy < -half || cx >= width + half || cy >= height + half) continue;
      if (cx < half || cy < half || cx >= width - half || cy >= height - half) {
        // At the edge of the canvas: pixel by pixel, clipped.
        this.stampClipped(i, cx, cy, a === OUTLINE ? outline : fill, a === OUTLINE);
        continue;
      }
      const base = cy * width + cx;
      if (a === OUTLINE) {
        for (let j = 0; j < outlineAt.length; j++) {
          const at = base + outlineAt[j];
          const dst = pixels[at];
          if (outlinePixels[j] >>> 24 >= dst >>> 24) pixels[at] = outlinePixels[j];
        }
      } else {
        const rgb = colours[i * 4] | (colours[i * 4 + 1] << 8) | (colours[i * 4 + 2] << 16);
        for (let j = 0; j < fillAt.length; j++) {
          const at = base + fillAt[j];
          if (fillAlpha[j] >= pixels[at] >>> 24) pixels[at] = rgb | (fillAlpha[j] << 24);
        }
      }
    }
  }

  private stampClipped(spot: number, cx: number, cy: number, stamp: Stamp, isOutline: boolean): void {
    const { pixels, colours } = this;
    const { width, height } = this.canvas;
    const rgb = colours[spot * 4] | (colours[spot * 4 + 1] << 8) | (colours[spot * 4 + 2] << 16);
    for (let j = 0; j < stamp.dx.length; j++) {
      const px = cx + stamp.dx[j];
      const py = cy + stamp.dy[j];
      if (px < 0 || py < 0 || px >= width || py >= height) continue;
      const src = isOutline ? stamp.value[j] : rgb | (stamp.value[j] << 24);
      if (src >>> 24 >= pixels[py * width + px] >>> 24) pixels[py * width + px] = src;
    }
  }

  /** Big spots, few on screen: one arc each, as the stamps would draw them. */
  private paintPaths(view: ViewTransform, style: PaintStyle): void {
    const { context: ctx, xy, colours } = this;
    const k = view.ratio;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(k, 0, 0, k, 0, 0);
    const r = style.radius;
    for (let i = 0; i < xy.length / 2; i++) {
      const a = colours[i * 4 + 3];
      if (a === 0) continue;
      const sx = view.ox + view.ax * xy[2 * i] + view.bx * xy[2 * i + 1];
      const sy = view.oy + view.ay * xy[2 * i] + view.by * xy[2 * i + 1];
      if (sx < -r || sy < -r || sx > view.width + r || sy > view.height + r) continue;
      ctx.beginPath();
      ctx.arc(sx, sy, r, 0, 2 * Math.PI);
      if (a === OUTLINE) {
        ctx.globalAlpha = 0.75;
        ctx.lineWidth = 2.75;
        ctx.strokeStyle = '#ffffff';
        ctx.stroke();
        ctx.globalAlpha = 0.9;
        ctx.lineWidth = 1.25;
        ctx.strokeStyle = RING;
        ctx.stroke();
      } else {
        const colour = `rgb(${colours[i * 4]},${colours[i * 4 + 1]},${colours[i * 4 + 2]})`;
        ctx.globalAlpha = style.opacity;
        ctx.fillStyle = colour;
        ctx.fill();
        ctx.globalAlpha = Math.min(1, style.opacity + 0.3);
        ctx.beginPath();
        ctx.arc(sx, sy, r - 0.625, 0, 2 * Math.PI);
        ctx.lineWidth = 1.25;
        ctx.strokeStyle = colour;
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
  }

  clear(): void {
    this.context.setTransform(1, 0, 0, 1, 0, 0);
    this.context.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  destroy(): void {
    this.image = null;
    this.pixels = new Uint32Array(0);
    this.canvas.remove();
  }

  /** Stamps for a radius in device pixels, the same shapes as the WebGL painter's fragment shader. */
  private stampsFor(radius: number, opacity: number, ratio: number): Stamps {
    const key = `${radius.toFixed(3)}:${opacity}:${ratio}`;
    if (this.stamps?.key === key) return this.stamps;
    const ring = radius >= 3 * ratio ? 1.25 * ratio : 0;
    const rimAlpha = Math.min(1, opacity + 0.3);
    // Filled: the disc at `opacity`, a rim just inside the edge above it.
    const fill = stamp(radius + 0.5, (d) => {
      const disc = (1 - smoothstep(radius - 0.5, radius + 0.5, d)) * opacity;
      const rim = ring > 0 ? band(d, radius - ring / 2, ring / 2) * rimAlpha : 0;
      return Math.round((rim + disc * (1 - rim)) * 255);
    });
    // Outline only: a white halo, a dark ring over it.
    const outlineHalf = Math.max(ring, 0.75 * ratio) / 2;
    const haloHalf = outlineHalf + 0.75 * ratio;
    const [dr, dg, db] = RING_RGB;
    const outline = stamp(radius + haloHalf + 0.5, (d) => {
      const halo = band(d, radius, haloHalf) * 0.75;
      const dark = band(d, radius, outlineHalf) * 0.9;
      const alpha = dark + halo * (1 - dark);
      if (alpha < 0.002) return 0;
      const mix = (c: number) => Math.round((c * dark + 255 * halo * (1 - dark)) / alpha);
      return (mix(dr) | (mix(dg) << 8) | (mix(db) << 16) | (Math.round(alpha * 255) << 24)) >>> 0;
    });
    this.stamps = { key, fill, outline };
    return this.stamps;
  }
}

/** The pixels within `reach` of a centre pixel where `shade` (of the distance) is not 0. */
function stamp(reach: number, shade: (d: number) => number): Stamp {
  const half = Math.ceil(reach);
  const dx: number[] = [];
  const dy: number[] = [];
  const value: number[] = [];
  for (let v = -half; v <= half; v++) {
    for (let u = -half; u <= half; u++) {
      const shaded = shade(Math.hypot(u, v));
      if (shaded === 0) continue;
      dx.push(u);
      dy.push(v);
      value.push(shaded);
    }
  }
  return { dx: Int16Array.from(dx), dy: Int16Array.from(dy), value: Uint32Array.from(value), half };
}

function smoothstep(edge0: number, edge1: number, x: number): number {
  const t = Math.min(1, Math.max(0, (x - edge0) / (edge1 - edge0)));
  return t * t * (3 - 2 * t);
}

/** Coverage of a ring of half-width h around radius c, antialiased over one pixel. */
function band(d: number, c: number, h: number): number {
  return 1 - smoothstep(h - 0.5, h + 0.5, Math.abs(d - c));
}

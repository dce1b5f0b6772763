// Helpers of the end-to-end tests (browser and Electron): where a spot is on screen, a screenshot's pixels.

import sharp from 'sharp';
import type { SectionSpots } from '../../core/api/api.js';

/** A spot's centre in the viewer, from the overlay's slide -> screen transform (data-view). */
export function onScreen(view: string | null, spots: SectionSpots, index: number): { x: number; y: number } {
  const [ox, oy, ax, ay, bx, by] = (view ?? '').split(',').map(Number);
  const [x, y] = [spots.x[index], spots.y[index]];
  return { x: ox + ax * x + bx * y, y: oy + ay * x + by * y };
}

/** A screenshot's pixels (RGB). */
export async function pixels(
  png: Buffer,
): Promise<{ rgb: (x: number, y: number) => number[]; width: number; height: number }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const rgb = (x: number, y: number) => {
    const at = (Math.round(y) * info.width + Math.round(x)) * 3;
    return [data[at], data[at + 1], data[at + 2]];
  };
  return { rgb, width: info.width, height: info.height };
}

/** Pixels a viridis colouring makes green (H&E is pink and purple, magma has no green). */
export function greenPixels(image: Awaited<ReturnType<typeof pixels>>): number {
  let n = 0;
  for (let y = 0; y < image.height; y += 2) {
    for (let x = 0; x < image.width; x += 2) {
      const [r, g, b] = image.rgb(x, y);
      if (g > r + 30 && g > b + 10) n++;
    }
  }
  return n;
}

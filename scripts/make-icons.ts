// Renders the app icon (resources/build/icon.svg) to the PNG set electron-builder reads from resources/build/icons/:
// Linux uses the set as it is; macOS (.icns) and Windows (.ico) icons are derived from its largest PNG.
// Usage: npm run make-icons   (after editing icon.svg; the PNGs are committed)

import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { writeFileAtomic } from '../core/atomic-write.js';
import { packageRoot } from '../core/resources.js';

/** Square sizes in pixels: freedesktop's usual set, plus 1024 for macOS Retina icons. */
export const ICON_SIZES = [16, 24, 32, 48, 64, 128, 256, 512, 1024] as const;

export function iconSource(): string {
  return resolve(packageRoot(), 'resources', 'build', 'icon.svg');
}

export function iconSetFolder(): string {
  return resolve(packageRoot(), 'resources', 'build', 'icons');
}

/** `NxN.png`: the name electron-builder's icon set reader takes the size from. */
export function iconFileName(size: number): string {
  return `${size}x${size}.png`;
}

/** The SVG is drawn at 1024 px, the largest size, so every size is a downscale of its full-resolution render. */
async function renderIcon(svg: Buffer, size: number): Promise<Buffer> {
  return sharp(svg).resize(size, size).png({ compressionLevel: 9 }).toBuffer();
}

async function makeIcons(): Promise<void> {
  const svg = await readFile(iconSource());
  await mkdir(iconSetFolder(), { recursive: true });
  for (const size of ICON_SIZES) {
    const file = join(iconSetFolder(), iconFileName(size));
    await writeFileAtomic(file, await renderIcon(svg, size));
    console.log(file);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await makeIcons();
}

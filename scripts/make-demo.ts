// Builds resources/demo/: the small real section the app and the CLI open on a fresh install.
// Source: HER2ST section B4 (Andersson et al., Nat Commun 12:6012, 2021), image downsized so the demo stays small.
// Usage: npm run make-demo [-- SOURCE_FOLDER]   (default ../shared/data/her2st/B4)

import { chmod, copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { demoPath, packageRoot } from '../core/resources.js';

/** Longest side of the demo image: enough to deep-zoom into glands, small enough to ship (~3 MB). */
const DEMO_IMAGE_SIDE = 4096;

const README = `HER2ST section B4, downsized for the DELST Studio demo (made by scripts/make-demo.ts).

Data: Andersson A. et al., "Spatial deconvolution of HER2-positive breast cancer delineates tumor-associated
cell type interactions", Nat Commun 12:6012 (2021); public research data (almaan/her2st, commit 85df741).
Legacy ST 1k array: 100 um spots on a 200 um grid. Files: counts.tsv.gz (spots x genes, raw UMI counts),
spots.tsv (ST Spot Detector table, full-resolution pixels), scalefactors_json.json (tissue_hires_scalef maps
full-resolution pixels to image.jpg pixels), annotations.tsv (expression-derived cluster names from the paper:
not image-only ground truth), image.jpg (H&E, longest side ${DEMO_IMAGE_SIDE} px).
`;

async function makeDemo(source: string, target: string): Promise<void> {
  const staging = `${target}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  for (const file of ['counts.tsv.gz', 'spots.tsv', 'annotations.tsv']) {
    await copyFile(join(source, file), join(staging, file));
    await chmod(join(staging, file), 0o644); // sources may be read-only
  }
  const image = join(source, 'image.jpg');
  const { width = 0, height = 0 } = await sharp(image).metadata();
  const factor = DEMO_IMAGE_SIDE / Math.max(width, height);
  const info = await sharp(image)
    .resize({ width: Math.round(width * factor), height: Math.round(height * factor), kernel: 'lanczos3' })
    .jpeg({ quality: 85, mozjpeg: true })
    .toFile(join(staging, 'image.jpg'));
  const scalefactors = JSON.parse(await readFile(join(source, 'scalefactors_json.json'), 'utf8')) as Record<
    string,
    number
  >;
  // Spots stay in full-resolution pixels; only the image-to-fullres factor changes.
  scalefactors.tissue_hires_scalef = (scalefactors.tissue_hires_scalef ?? 1) * (info.width / width);
  await writeFile(join(staging, 'scalefactors_json.json'), JSON.stringify(scalefactors, null, 2) + '\n');
  await writeFile(join(staging, 'README.txt'), README);
  await rm(target, { recursive: true, force: true });
  await rename(staging, target);
  console.log(`demo written to ${target}: image ${info.width} x ${info.height}, ${(info.size / 1e6).toFixed(1)} MB`);
}

const source = resolve(process.argv[2] ?? join(packageRoot(), '..', 'shared', 'data', 'her2st', 'B4'));
makeDemo(source, demoPath()).catch((error: unknown) => {
  console.error(`make-demo: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});

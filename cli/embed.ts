// `delst embed MODEL SECTION --out FILE.npy [--modality image|gene] [--backend B] [--batch N] [--json]`:
// per-spot embeddings of a section's in-tissue spots, in the section's spot order, as NumPy files:
//   FILE                 hyperboloid space components, float32 [spots, D] (clip models: the projections)
//   FILE.tangent.npy     tangent vectors at the origin, logMap0 of the above, float32 [spots, D]
//   FILE.features.npy    backbone features before the projection, float32 [spots, width]
//   FILE.spots.csv       the spot ids, one per row, in the same order
// (FILE.tangent.npy and the others replace a trailing .npy of FILE.) Every file is written atomically.

import path from 'node:path';
import { BACKEND_CHOICES, initBackend, type BackendChoice } from '../core/engine/backend.js';
import { loadModel } from '../core/engine/checkpoint.js';
import { buildDataset } from '../core/engine/dataset.js';
import { embedDataset, type EmbedModality } from '../core/engine/embed.js';
import { panelCoverage } from '../core/engine/gene-panel.js';
import { writeFileAtomic, writeNpy } from '../core/engine/npy.js';
import { openSections } from '../core/readers/open.js';
import { choiceOption, numberOption, parseArgs, UsageError } from './args.js';
import { progressBar } from './progress.js';

export const EMBED_USAGE = `Usage: delst embed MODEL SECTION --out FILE.npy [options]

Writes the embeddings of the section's in-tissue spots: FILE.npy (hyperboloid space components, float32
[spots, D]), FILE.tangent.npy (tangent vectors at the origin), FILE.features.npy (backbone features) and
FILE.spots.csv (spot ids in row order).

Options:
  --modality M   image (default; needs the H&E image) or gene
  --backend B    auto, tensorflow, webgpu or wasm (default auto: a CUDA GPU, else a GPU through WebGPU, else
                 the CPU)
  --batch N      spots per forward pass (default 64)
  --json         print what was written as JSON`;

/** Where the four files go for `--out FILE`. */
export function embedOutputs(file: string): { space: string; tangent: string; features: string; spots: string } {
  const base = file.endsWith('.npy') ? file.slice(0, -'.npy'.length) : file;
  return {
    space: file,
    tangent: `${base}.tangent.npy`,
    features: `${base}.features.npy`,
    spots: `${base}.spots.csv`,
  };
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export async function runEmbed(args: readonly string[]): Promise<number> {
  const parsed = parseArgs(args, ['out', 'modality', 'backend', 'batch'], ['json']);
  if (parsed.positional.length !== 2) throw new UsageError('give a MODEL folder and one SECTION');
  const [modelDir, sectionPath] = parsed.positional;
  const out = parsed.options.get('out');
  if (!out) throw new UsageError('--out FILE.npy is required');
  const modality: EmbedModality = choiceOption(parsed, 'modality', ['image', 'gene'] as const) ?? 'image';
  const backend = choiceOption<BackendChoice>(parsed, 'backend', BACKEND_CHOICES) ?? 'auto';
  const batchSize = numberOption(parsed, 'batch', { integer: true, min: 1 }) ?? 64;
  const json = parsed.options.has('json');

  const { sections } = await openSections(sectionPath);
  if (sections.length !== 1) {
    throw new UsageError(`${sectionPath} holds ${sections.length} sections: give one section`);
  }
  const section = sections[0];
  if (modality === 'image' && !section.image) {
    throw new UsageError(`${section.name} has no H&E image: use --modality gene, or give a section with its image`);
  }

  const info = await initBackend(backend);
  if (!json) console.error(`delst embed: ${info.device}`);
  const { model, checkpoint } = await loadModel(modelDir);
  try {
    const panel = checkpoint.manifest.genePanel;
    if (!panel) throw new UsageError(`${modelDir}: the model has no gene panel`);
    if (modality === 'gene') {
      const { found, missing } = panelCoverage(section, panel);
      if (found === 0) throw new UsageError(`${section.name} measures none of the model's panel genes`);
      if (missing.length > 0 && !json) {
        console.error(`delst embed: ${missing.length} of ${panel.genes.length} panel genes not measured (read as 0)`);
      }
    }
    const dataset = await buildDataset([section], panel, {
      inputSize: model.config.image.inputSize,
      withPatches: modality === 'image',
    });
    const bar = json ? null : progressBar('embedding');
    const embeddings = await embedDataset(model, dataset, modality, {
      batchSize,
      onProgress: (done, total) => bar?.update(done, total),
    }).finally(() => bar?.finish());

    const files = embedOutputs(path.resolve(out));
    const n = embeddings.count;
    await writeNpy(files.space, embeddings.space, [n, embeddings.dim]);
    await writeNpy(files.tangent, embeddings.tangent, [n, embeddings.dim]);
    await writeNpy(files.features, embeddings.features, [n, embeddings.featureDim]);
    await writeFileAtomic(files.spots, ['spot_id', ...dataset.spotIds.map(csvField)].join('\n') + '\n');
    const report = {
      model: checkpoint.path,
      section: section.name,
      modality,
      spots: n,
      dim: embeddings.dim,
      featureDim: embeddings.featureDim,
      mode: model.config.mode,
      backend: info.name,
      device: info.device,
      files,
    };
    console.log(
      json
        ? JSON.stringify(report)
        : `${n} spots of ${section.name} (${modality}): ${files.space} [${n}, ${embeddings.dim}], ` +
            `${path.basename(files.tangent)}, ${path.basename(files.features)} [${n}, ${embeddings.featureDim}], ` +
            path.basename(files.spots),
    );
    return 0;
  } finally {
    model.dispose();
  }
}

// The embeddings behind predictions, similar tissue and the Poincaré-disk map: one pass of a model's encoders per
// section, kept in memory per model checkpoint and section. It lives in the inference worker
// (core/api/inference-worker.ts), which runs one job at a time (the model and the backend are shared). Image
// embeddings come from core/eval/evaluate.ts (embedSections); gene embeddings (the model's gene encoder on the
// section's counts) are computed only when asked for.

import { initBackend } from '../engine/backend.js';
import { loadModel } from '../engine/checkpoint.js';
import { buildDataset } from '../engine/dataset.js';
import { embedDataset } from '../engine/embed.js';
import type { DelstModel } from '../engine/models/delst-model.js';
import type { GenePanel } from '../engine/gene-panel.js';
import { embedSections, type EmbeddedSection, type EmbeddingSpace } from '../eval/evaluate.js';
import type { Matrix } from '../eval/matrix.js';
import type { Section } from '../section/section.js';
import type { ModelInfo } from './api.js';

interface Cached {
  readonly embedded: EmbeddedSection;
  readonly space: EmbeddingSpace;
  /** rows x D gene embeddings (hyperboloid space components), rows as `embedded`; computed on demand. */
  gene?: Matrix;
}

export interface ModelEmbeddings {
  readonly space: EmbeddingSpace;
  /** Per section, in the order asked for. */
  readonly image: EmbeddedSection[];
  /** Per section (null where the section has no counts), when genes were asked for. */
  readonly gene: (Matrix | null)[] | null;
}

/** What the worker needs of a library model: where its checkpoint is, and its date and name. */
export type ModelRef = Pick<ModelInfo, 'path' | 'date' | 'name'>;

/** The model fields a job sends to the worker. */
export function modelRef(model: ModelInfo): ModelRef {
  return { path: model.path, date: model.date, name: model.name };
}

/** The key of a model's current checkpoint: a retrained model embeds again. */
function modelKey(model: ModelRef): string {
  return `${model.path}\u0000${model.date}`;
}

export class EmbeddingCache {
  private readonly cache = new WeakMap<Section, Map<string, Cached>>();

  /**
   * Image embeddings (and gene embeddings with `genes`) of `sections` with `model`, from the cache or computed in
   * one model load. One call at a time.
   */
  async embed(
    model: ModelRef,
    sections: readonly Section[],
    options: { genes?: boolean } = {},
  ): Promise<ModelEmbeddings> {
    const key = modelKey(model);
    const cached = (s: Section) => this.cache.get(s)?.get(key);
    const missing = [...new Set(sections.filter((s) => !cached(s)))];
    const noGene = options.genes
      ? [...new Set(sections.filter((s) => s.genes.symbols.length > 0 && !cached(s)?.gene))]
      : [];
    if (missing.length > 0 || noGene.length > 0) {
      await initBackend('auto');
      const { model: loaded, checkpoint } = await loadModel(model.path);
      try {
        const panel = checkpoint.manifest.genePanel;
        if (!panel) throw new Error(`model ${model.name} has no gene panel`);
        if (missing.length > 0) {
          const result = await embedSections(loaded, panel, missing);
          result.embedded.forEach((embedded, i) => {
            let byModel = this.cache.get(missing[i]);
            if (!byModel) this.cache.set(missing[i], (byModel = new Map()));
            byModel.set(key, { embedded, space: result.space });
          });
        }
        for (const section of noGene) cached(section)!.gene = await geneEmbeddings(loaded, panel, section);
      } finally {
        loaded.dispose();
      }
    }
    const entries = sections.map((s) => cached(s)!);
    return {
      space: entries[0]?.space ?? { curvature: null, distanceName: '' },
      image: entries.map((e) => e.embedded),
      gene: options.genes ? entries.map((e) => e.gene ?? null) : null,
    };
  }
}

/** The gene encoder's embeddings of a section's in-tissue spots (the rows of its image embeddings). */
async function geneEmbeddings(model: DelstModel, panel: GenePanel, section: Section): Promise<Matrix> {
  const dataset = await buildDataset([section], panel, { inputSize: model.config.image.inputSize, withPatches: false });
  const e = await embedDataset(model, dataset, 'gene');
  return { rows: e.count, cols: e.dim, data: Float64Array.from(e.space) };
}

/** Finds a library model by id, or names the missing id. */
export async function findModel(models: Promise<ModelInfo[]>, modelId: unknown, caller: string): Promise<ModelInfo> {
  const model = (await models).find((m) => m.id === modelId);
  if (!model) throw new Error(`${caller}: no model with id ${String(modelId).slice(0, 64)}`);
  return model;
}

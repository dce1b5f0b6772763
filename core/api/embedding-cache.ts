// The embeddings behind predictions, similar tissue and the Poincaré-disk map: one pass of a model's encoders per
// section, kept in memory per model checkpoint and section. It lives in the inference worker
// (core/api/inference-worker.ts), which runs one job at a time (the model and the backend are shared). Image
// embeddings come from core/eval/evaluate.ts (embedSections); gene embeddings (the model's gene encoder on the
// section's counts) are computed only when asked for. Each section is cached as soon as it is embedded: a job
// cancelled midway keeps the sections it finished and nothing of the one it was on.

import { initBackend } from '../engine/backend.js';
import { loadModel } from '../engine/checkpoint.js';
import { buildDataset } from '../engine/dataset.js';
import { inTissueSpots } from '../engine/gene-panel.js';
import { embedDataset } from '../engine/embed.js';
import type { DelstModel } from '../engine/models/delst-model.js';
import type { GenePanel } from '../engine/gene-panel.js';
import { embedSections, type EmbeddedSection, type EmbeddingSpace } from '../eval/evaluate.js';
import type { Matrix } from '../eval/matrix.js';
import type { Section } from '../section/section.js';
import type { ModelInfo } from './api.js';
import { GENE_SPOT_WORK, type JobContext, type WorkerProgress } from './inference-status.js';

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
   * one model load, reporting progress to `context` and stopping when its signal is aborted. One call at a time.
   */
  async embed(
    model: ModelRef,
    sections: readonly Section[],
    context: JobContext,
    options: { genes?: boolean } = {},
  ): Promise<ModelEmbeddings> {
    const key = modelKey(model);
    const cached = (s: Section) => this.cache.get(s)?.get(key);
    const missing = [...new Set(sections.filter((s) => !cached(s)))];
    const noGene = options.genes
      ? [...new Set(sections.filter((s) => s.genes.symbols.length > 0 && !cached(s)?.gene))]
      : [];
    if (missing.length > 0 || noGene.length > 0) {
      const progress = new EmbedProgress(context, missing, noGene);
      await initBackend('auto');
      const { model: loaded, checkpoint } = await loadModel(model.path);
      try {
        const panel = checkpoint.manifest.genePanel;
        if (!panel) throw new Error(`model ${model.name} has no gene panel`);
        for (const section of missing) {
          const result = await embedSections(loaded, panel, [section], {
            signal: context.signal,
            onProgress: (done, _total, name) => {
              if (done === 0) progress.reading(name);
            },
            onSpots: (done, total, name) => progress.spots('embedding', name, done, total),
          });
          let byModel = this.cache.get(section);
          if (!byModel) this.cache.set(section, (byModel = new Map()));
          byModel.set(key, { embedded: result.embedded[0], space: result.space });
        }
        for (const section of noGene) {
          cached(section)!.gene = await geneEmbeddings(loaded, panel, section, context.signal, (done, total) =>
            progress.spots('genes', section.name, done, total),
          );
        }
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

/**
 * The progress of one embed call: which pass over which section (image passes, then gene passes), its spots, and
 * the work done of the call's work (an image spot 1, a gene spot GENE_SPOT_WORK).
 */
class EmbedProgress {
  private readonly work: number;
  /** Work of the passes finished. */
  private finished = 0;
  /** Work of the pass in hand, and its 1-based number. */
  private current = 0;
  private pass = 0;
  private readonly passes: number;

  constructor(
    private readonly context: JobContext,
    image: readonly Section[],
    gene: readonly Section[],
  ) {
    const spots = (s: Section) => inTissueSpots(s).length;
    this.work = image.reduce((n, s) => n + spots(s), 0) + gene.reduce((n, s) => n + spots(s) * GENE_SPOT_WORK, 0);
    this.passes = image.length + gene.length;
    context.report(this.at('loading', null, 0, 0, 0));
  }

  /** An image pass starts: the section's patches are cut. */
  reading(sectionName: string): void {
    this.finished += this.current;
    this.current = 0;
    this.pass++;
    this.context.report(this.at('reading', sectionName, 0, 0, this.finished));
  }

  /** Spots embedded so far in the pass in hand (a gene pass starts at 0 spots). */
  spots(phase: 'embedding' | 'genes', sectionName: string, done: number, total: number): void {
    if (phase === 'genes' && done === 0) {
      this.finished += this.current;
      this.pass++;
    }
    this.current = phase === 'genes' ? done * GENE_SPOT_WORK : done;
    this.context.report(this.at(phase, sectionName, done, total, this.finished + this.current));
  }

  private at(
    phase: WorkerProgress['phase'],
    sectionName: string | null,
    done: number,
    total: number,
    workDone: number,
  ): WorkerProgress {
    return { phase, sectionName, done, total, section: this.pass, sections: this.passes, workDone, work: this.work };
  }
}

/** The gene encoder's embeddings of a section's in-tissue spots (the rows of its image embeddings). */
async function geneEmbeddings(
  model: DelstModel,
  panel: GenePanel,
  section: Section,
  signal: AbortSignal,
  onSpots: (done: number, total: number) => void,
): Promise<Matrix> {
  signal.throwIfAborted();
  const dataset = await buildDataset([section], panel, { inputSize: model.config.image.inputSize, withPatches: false });
  onSpots(0, dataset.size);
  const e = await embedDataset(model, dataset, 'gene', {
    onProgress: (done, total) => {
      signal.throwIfAborted();
      onSpots(done, total);
    },
  });
  return { rows: e.count, cols: e.dim, data: Float64Array.from(e.space) };
}

/** Finds a library model by id, or names the missing id. */
export async function findModel(models: Promise<ModelInfo[]>, modelId: unknown, caller: string): Promise<ModelInfo> {
  const model = (await models).find((m) => m.id === modelId);
  if (!model) throw new Error(`${caller}: no model with id ${String(modelId).slice(0, 64)}`);
  return model;
}

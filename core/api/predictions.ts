// Model predictions on an open section (issue 5, Predictions on the slide): the section and its reference sections
// are embedded with a library model (embeddings cached in memory per model checkpoint and section), then
// * the class per spot: a linear probe (core/eval/logistic.ts) on the reference spots' label column, on the frozen
//   backbone features, as `delst predict` does;
// * the expression of named genes per spot: kNN from the reference spots in the image embedding space (Lorentz
//   distance at the model's curvature; clip: normalised projections), log-normalised with the shared target sum of
//   core/eval/evaluate.ts, with the measured values on the same scale where the section has them.
// The request is checked here, on the main thread, against the open sections and their label columns (annotations
// live only here); the model work (embedding, probe, kNN) runs in the inference worker (computePrediction), one job
// at a time (core/api/inference-client.ts).

import { sharedGeneSource, stack } from '../eval/evaluate.js';
import { euclideanDistance, knnPredict, lorentzDistance } from '../eval/gene-prediction.js';
import { linearProbe } from '../eval/logistic.js';
import type { LabelColumn, Section } from '../section/section.js';
import type {
  HyperbolicMap,
  HyperbolicMapRequest,
  InferenceStatus,
  ModelInfo,
  PredictionRequest,
  SectionPrediction,
  SimilarSpot,
  SimilarSpotsRequest,
} from './api.js';
import { findModel, modelRef, type EmbeddingCache, type ModelRef } from './embedding-cache.js';
import { hyperbolicMap } from './hyperbolic-map.js';
import { InferenceClient } from './inference-client.js';
import { finalPhase, type JobContext } from './inference-status.js';
import { findSimilarSpots } from './similarity.js';

const DEFAULT_K = 50;
const MAX_GENES = 20;

/** An open section as the predictor sees it. */
export interface PredictableSection {
  readonly id: string;
  readonly section: Section;
  /** Label columns (the section's, and its annotations where there is a project). */
  readonly labels: ReadonlyMap<string, LabelColumn>;
}

export interface PredictionHost {
  listModels(): Promise<ModelInfo[]>;
  section(id: string): PredictableSection;
  /** Every open section, in opening order. */
  sections(): PredictableSection[];
}

/** A section the models can embed: an H&E image with spots. */
export function isUsable(s: PredictableSection): boolean {
  return s.section.image !== null && s.section.format !== 'image' && s.section.spots.ids.length > 0;
}

/** A section predictions can be made on: one with spots, or a bare image with tiles (tileSection), never a reference. */
function isTarget(s: PredictableSection): boolean {
  return s.section.image !== null && s.section.spots.ids.length > 0;
}

/** What the worker is sent for a prediction, besides the sections (references not the target, then the target). */
export interface PredictParams {
  readonly model: ModelRef;
  readonly target: number;
  /** Per reference: its index in the job's sections and its `column` values (null where it has no labels). */
  readonly references: readonly { readonly index: number; readonly labels: LabelColumn | null }[];
  readonly column: string | null;
  readonly genes: readonly string[];
}

/** The worker's part of a SectionPrediction. */
export type PredictOutput = Pick<
  SectionPrediction,
  'labelColumn' | 'classes' | 'predictedClass' | 'probability' | 'targetSum' | 'genes'
>;

export class PredictionManager {
  constructor(
    private readonly host: PredictionHost,
    /** The worker every job below runs in, one at a time (the model and the backend are shared). */
    readonly inference = new InferenceClient(),
  ) {}

  predict(sectionId: string, request: PredictionRequest): Promise<SectionPrediction> {
    return this.inference.serial('predict', 'predictSection', () => this.run(sectionId, request));
  }

  /** Nearest spots of one spot in a model's image embedding space, over every open section with an image. */
  findSimilar(sectionId: string, spotIndex: number, request: SimilarSpotsRequest): Promise<SimilarSpot[]> {
    return this.inference.serial('similar', 'findSimilarSpots', () =>
      findSimilarSpots(this.host, this.inference, sectionId, spotIndex, request),
    );
  }

  /** The Poincaré-disk map of sections' embeddings. */
  hyperbolicMap(sectionIds: readonly string[], request: HyperbolicMapRequest): Promise<HyperbolicMap> {
    return this.inference.serial('map', 'getHyperbolicMap', () =>
      hyperbolicMap(this.host, this.inference, sectionIds, request),
    );
  }

  /** Where the running model job stands. */
  status(): InferenceStatus {
    return this.inference.status();
  }

  /** Stops the running model job at its next batch and drops the waiting ones. */
  cancel(): InferenceStatus {
    return this.inference.cancel();
  }

  /** A section closed or replaced: the worker drops it and its embeddings. */
  forget(section: Section): void {
    this.inference.forget(section);
  }

  /** Ends the worker (shutdown). */
  terminate(): Promise<void> {
    return this.inference.terminate();
  }

  private async run(sectionId: string, request: PredictionRequest): Promise<SectionPrediction> {
    if (typeof request !== 'object' || request === null) throw new Error('predictSection: give { modelId }');
    const { modelId } = request;
    const column = request.labelColumn ?? null;
    const genes = request.genes ?? [];
    if (column !== null && typeof column !== 'string') throw new Error('predictSection: labelColumn must be a string');
    if (!Array.isArray(genes) || !genes.every((g) => typeof g === 'string'))
      throw new Error('predictSection: genes must be an array of gene symbols');
    if (genes.length > MAX_GENES) throw new Error(`predictSection: at most ${MAX_GENES} genes at a time`);
    const target = this.host.section(sectionId);
    const model = await findModel(this.host.listModels(), modelId, 'predictSection');
    if (!isTarget(target)) {
      const hint = target.section.format === 'image' && target.section.image ? ': tile it first' : '';
      throw new Error(`predictSection: ${target.section.name} has no H&E image with spots to predict on${hint}`);
    }
    const warnings: string[] = [];
    let references: PredictableSection[];
    if (request.referenceSectionIds !== undefined && request.referenceSectionIds !== null) {
      if (!Array.isArray(request.referenceSectionIds) || request.referenceSectionIds.length === 0)
        throw new Error('predictSection: referenceSectionIds must be a non-empty array of open section ids');
      references = request.referenceSectionIds.map((id) => this.host.section(id));
      const bare = references.filter((r) => !isUsable(r)).map((r) => r.section.name);
      if (bare.length > 0)
        throw new Error(`predictSection: reference section ${bare.join(', ')} has no H&E image with spots`);
    } else {
      references = this.host.sections().filter((s) => s.id !== sectionId && isUsable(s));
      if (references.length === 0 && !isUsable(target))
        throw new Error('predictSection: open a section with ST and an H&E image as the reference of a tiled image');
      if (references.length === 0) references = [target];
    }
    references = [...new Map(references.map((r) => [r.id, r])).values()];
    const resubstitution = references.some((r) => r.id === sectionId);
    if (resubstitution) {
      warnings.push(
        references.length === 1
          ? `resubstitution: ${target.section.name} is its own only reference, so its predictions repeat its own ` +
              'labels and expression and say nothing about how well the model generalises'
          : `resubstitution: ${target.section.name} is among its own references`,
      );
    }
    if (column !== null && !references.some((r) => hasLabels(r.labels.get(column)))) {
      throw new Error(
        `predictSection: label column '${column}' missing in all reference sections (` +
          `${references.map((r) => r.section.name).join(', ')})`,
      );
    }

    const all = [...references.filter((r) => r.id !== sectionId), target];
    const index = new Map(all.map((s, i) => [s.id, i]));
    if (column !== null) {
      const lacking = references.filter((r) => !hasLabels(r.labels.get(column))).map((r) => r.section.name);
      if (lacking.length > 0) warnings.push(`label column '${column}' missing in ${lacking.join(', ')}`);
    }
    const { genes: predicted, ...probed } = await this.inference.run(
      'predict',
      'predictSection',
      all.map((s) => s.section),
      {
        model: modelRef(model),
        target: all.length - 1,
        references: references.map((r) => {
          const labels = column === null ? undefined : r.labels.get(column);
          return { index: index.get(r.id)!, labels: hasLabels(labels) ? labels! : null };
        }),
        column,
        genes,
      },
    );
    return {
      modelId: model.id,
      referenceSectionIds: references.map((r) => r.id),
      genes: predicted,
      warnings,
      ...probed,
    };
  }
}

/** The model work of a prediction (in the inference worker): embeddings, then the probe and the kNN expression. */
export async function computePrediction(
  sections: Section[],
  params: PredictParams,
  cache: EmbeddingCache,
  context: JobContext,
): Promise<PredictOutput> {
  const { column, genes } = params;
  const { space, image } = await cache.embed(params.model, sections, context);
  const target = sections[params.target];
  const targetE = image[params.target];
  const refE = params.references.map((r) => image[r.index]);
  const nSpots = target.spots.ids.length;
  const out: { -readonly [K in keyof PredictOutput]: PredictOutput[K] } = { genes: [] };

  if (column !== null) {
    context.signal.throwIfAborted();
    context.report(finalPhase('fitting'));
    const labelled = params.references.filter((r) => r.labels !== null);
    const labelledE = labelled.map((r) => image[r.index]);
    const probe = linearProbe({
      trainX: stack(labelledE, (es) => es.features),
      trainY: labelled.flatMap((r, i) => Array.from(labelledE[i].spots, (s) => r.labels![s] ?? null)),
      testX: targetE.features,
      testY: Array.from(targetE.spots, () => null),
      dropLabels: ['undetermined'],
      seed: 0,
    });
    const K = probe.trainingClasses.length;
    const predictedClass: (string | null)[] = new Array<string | null>(nSpots).fill(null);
    const probability: (number | null)[] = new Array<number | null>(nSpots).fill(null);
    targetE.spots.forEach((s, r) => {
      predictedClass[s] = probe.predictions[r];
      let best = 0;
      for (let c = 0; c < K; c++) best = Math.max(best, probe.probabilities.data[r * K + c]);
      probability[s] = best;
    });
    out.labelColumn = column;
    out.classes = probe.trainingClasses;
    out.predictedClass = predictedClass;
    out.probability = probability;
  }

  if (genes.length > 0) {
    context.signal.throwIfAborted();
    context.report(finalPhase('predicting'));
    const measurable = target.genes.symbols.length > 0;
    const source = sharedGeneSource(refE, measurable ? [targetE] : []);
    const byUpper = new Map<string, number>();
    source.genes.forEach((g, i) => {
      if (!byUpper.has(g.toUpperCase())) byUpper.set(g.toUpperCase(), i);
    });
    const indices = genes.map((g) => {
      const i = byUpper.get(g.trim().toUpperCase());
      if (i === undefined) {
        throw new Error(
          `predictSection: gene ${JSON.stringify(g.slice(0, 64))} is not measured in every reference section` +
            (measurable ? ` and ${target.name}` : ''),
        );
      }
      return i;
    });
    const G = indices.length;
    const values = indices.map((g) => source.train(g));
    const n = values[0].length;
    const data = new Float64Array(n * G);
    values.forEach((v, g) => {
      for (let i = 0; i < n; i++) data[i * G + g] = v[i];
    });
    const predicted = knnPredict(
      stack(refE, (es) => es.embeddings),
      { rows: n, cols: G, data },
      targetE.embeddings,
      {
        k: Math.min(DEFAULT_K, n),
        distance: space.curvature === null ? euclideanDistance : lorentzDistance(space.curvature),
      },
    );
    out.targetSum = source.targetSum;
    out.genes = indices.map((gene, g) => {
      const p: (number | null)[] = new Array<number | null>(nSpots).fill(null);
      targetE.spots.forEach((s, r) => (p[s] = predicted.data[r * G + g]));
      let measured: (number | null)[] | null = null;
      if (measurable) {
        const m = source.test(gene);
        measured = new Array<number | null>(nSpots).fill(null);
        targetE.spots.forEach((s, r) => (measured![s] = m[r]));
      }
      return { symbol: source.genes[gene], predicted: p, measured };
    });
  }
  return out;
}

function hasLabels(column: LabelColumn | undefined): boolean {
  return column !== undefined && column.some((v) => v !== null && v !== undefined);
}

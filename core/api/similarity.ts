// Similar tissue (issue 5, Predictions on the slide): the spots nearest to one spot in a model's image embedding
// space, over every open section with an image. Exhaustive search: a few thousand spots of 256 dimensions take
// milliseconds, and it gives exact neighbours. The request is checked on the main thread; the embedding and the
// search run in the inference worker (computeSimilar).

import { euclideanDistance, lorentzDistance, type DistanceFunction } from '../eval/gene-prediction.js';
import type { Matrix, Vector } from '../eval/matrix.js';
import type { Section } from '../section/section.js';
import type { SimilarSpot, SimilarSpotsRequest } from './api.js';
import { findModel, modelRef, type EmbeddingCache, type ModelRef } from './embedding-cache.js';
import type { InferenceClient } from './inference-client.js';
import { finalPhase, type JobContext } from './inference-status.js';
import { isUsable, type PredictionHost } from './predictions.js';

const DEFAULT_K = 10;
const MAX_K = 1000;

/** Candidates: a block of embedding rows, each row naming its owner by `part` and `row`. */
export interface CandidateBlock {
  readonly embeddings: Matrix;
}

export interface Neighbour {
  /** Index of the block in the list. */
  readonly part: number;
  readonly row: number;
  readonly distance: number;
}

/** The `k` rows nearest to `query` over all blocks, nearest first; ties by block, then row (results repeat). */
export function nearestRows(
  query: Vector,
  blocks: readonly CandidateBlock[],
  k: number,
  distance: DistanceFunction,
): Neighbour[] {
  const all: Neighbour[] = [];
  blocks.forEach(({ embeddings: m }, part) => {
    if (m.cols !== query.length) throw new Error(`block ${part} has ${m.cols} dimensions, the query ${query.length}`);
    for (let row = 0; row < m.rows; row++) {
      all.push({ part, row, distance: distance(query, m.data.subarray(row * m.cols, (row + 1) * m.cols)) });
    }
  });
  all.sort((a, b) => a.distance - b.distance || a.part - b.part || a.row - b.row);
  return all.slice(0, k);
}

function neighbourCount(k: unknown): number {
  if (k === undefined || k === null) return DEFAULT_K;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > MAX_K) {
    throw new Error(`findSimilarSpots: k must be a whole number from 1 to ${MAX_K}, not ${JSON.stringify(k)}`);
  }
  return k;
}

/** What the worker is sent for a search, besides the sections (every open section with an image). */
export interface SimilarParams {
  readonly model: ModelRef;
  /** The index of the query's section among the job's sections. */
  readonly own: number;
  readonly spotIndex: number;
  readonly k: number;
}

/** The neighbours found: `part` indexes the job's sections. */
export type SimilarOutput = { part: number; spotIndex: number; spotId: string; distance: number }[];

/** The API call: see StudioApi.findSimilarSpots. Run it inside the client's `serial`. */
export async function findSimilarSpots(
  host: PredictionHost,
  inference: InferenceClient,
  sectionId: string,
  spotIndex: number,
  request: SimilarSpotsRequest,
): Promise<SimilarSpot[]> {
  if (typeof request !== 'object' || request === null) throw new Error('findSimilarSpots: give { modelId, k }');
  const k = neighbourCount(request.k);
  const target = host.section(sectionId);
  const { spots } = target.section;
  if (!Number.isInteger(spotIndex) || spotIndex < 0 || spotIndex >= spots.ids.length) {
    throw new Error(`findSimilarSpots: no spot ${String(spotIndex).slice(0, 32)} in ${target.section.name}`);
  }
  if (!isUsable(target)) {
    throw new Error(`findSimilarSpots: ${target.section.name} has no H&E image with spots to compare`);
  }
  const model = await findModel(host.listModels(), request.modelId, 'findSimilarSpots');
  const open = host.sections().filter(isUsable);
  const found = await inference.run(
    'similar',
    'findSimilarSpots',
    open.map((s) => s.section),
    { model: modelRef(model), own: open.findIndex((s) => s.id === sectionId), spotIndex, k },
  );
  return found.map(({ part, spotIndex: index, spotId, distance }) => ({
    sectionId: open[part].id,
    sectionName: open[part].section.name,
    spotIndex: index,
    spotId,
    distance,
  }));
}

/** The model work of a search (in the inference worker): embeddings of every section, then the nearest rows. */
export async function computeSimilar(
  sections: Section[],
  params: SimilarParams,
  cache: EmbeddingCache,
  context: JobContext,
): Promise<SimilarOutput> {
  const { space, image } = await cache.embed(params.model, sections, context);
  context.report(finalPhase('searching'));
  const own = image[params.own];
  const row = own.spots.indexOf(params.spotIndex);
  if (row < 0) {
    const section = sections[params.own];
    throw new Error(
      `findSimilarSpots: spot ${section.spots.ids[params.spotIndex]} of ${section.name} is outside the tissue`,
    );
  }
  const m = own.embeddings;
  const query = m.data.subarray(row * m.cols, (row + 1) * m.cols);
  const distance = space.curvature === null ? euclideanDistance : lorentzDistance(space.curvature);
  return nearestRows(
    query,
    image.map((es) => ({ embeddings: es.embeddings })),
    params.k,
    distance,
  ).map(({ part, row: r, distance: d }) => {
    const index = image[part].spots[r];
    return { part, spotIndex: index, spotId: sections[part].spots.ids[index], distance: d };
  });
}

// The DELST model (docs/delst-method.md §3, §4.2-4.3): the two encoders, the projections into the shared space
// and MERU's learnable scalars, over one ParamStore.
//
//   tangent_I = exp(alpha_I) W_I f_I(patch),  z_I = expMap0(tangent_I, c)       (same for genes)
//
// `clip` mode keeps the raw projections (the CLIP loss normalises them) and has no alpha and no curvature.
// Training loop contract: build with createDelstModel, call embed inside tf.variableGrads over
// model.store.trainable(), apply the gradients, then clampParameters() after every optimizer step.

import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../config.js';
import { expMap0 } from '../lorentz.js';
import { ParamStore } from '../params.js';
import { deriveSeed, normalArray, Rng } from '../random.js';
import { GeneEncoder } from './gene-encoder.js';
import { ImageEncoder } from './image-encoder.js';

/** MERU's upper bound on the logit scale s (stored as log s). */
export const MAX_LOGIT_SCALE = 100;
/** MERU learns c within [c0 / 10, 10 c0]. */
export const CURVATURE_RANGE = 10;

export interface Embeddings {
  /** Backbone features before the projection (what linear probes use). */
  readonly imageFeatures: tf.Tensor2D;
  readonly geneFeatures: tf.Tensor2D;
  /** Tangent vectors at the origin, exp(alpha) W f: the input of the exponential map (clip: the projections). */
  readonly imageTangent: tf.Tensor2D;
  readonly geneTangent: tf.Tensor2D;
  /** Hyperboloid space components expMap0(tangent) (meru, delst); the raw projections (clip). */
  readonly image: tf.Tensor2D;
  readonly gene: tf.Tensor2D;
  /** c = exp(log c) (curvature -c); null in clip mode. */
  readonly curvature: tf.Scalar | null;
  /** s = exp(log s), the contrastive logit scale. */
  readonly logitScale: tf.Scalar;
}

export interface EmbedOptions {
  /** Seeds the gene encoder's dropout masks (training only); derive it from (run seed, epoch, step). */
  readonly dropoutSeed?: number;
}

/** Param names of the head (projections and scalars). */
export const HEAD = {
  imageProjection: 'head.imageProjection',
  geneProjection: 'head.geneProjection',
  imageAlpha: 'head.imageAlpha',
  geneAlpha: 'head.geneAlpha',
  logCurvature: 'head.logCurvature',
  logLogitScale: 'head.logLogitScale',
} as const;

export class DelstModel {
  readonly store = new ParamStore();
  readonly imageEncoder: ImageEncoder;
  readonly geneEncoder: GeneEncoder;
  readonly hyperbolic: boolean;

  /** Builds every param, initialised from `seed` (each part from its own stream, so parts do not shift each other). */
  constructor(
    readonly config: ModelConfig,
    seed = 0,
  ) {
    this.hyperbolic = config.mode !== 'clip';
    this.imageEncoder = new ImageEncoder(this.store, config.image, new Rng(deriveSeed(seed, 'image')));
    this.geneEncoder = new GeneEncoder(this.store, config.gene, new Rng(deriveSeed(seed, 'gene')));
    this.addHead(new Rng(deriveSeed(seed, 'head')));
  }

  /** Patches [B, N, N, 3] (0..255) and expression [B, panelSize] -> both embeddings (see Embeddings). */
  embed(patches: tf.Tensor4D, expression: tf.Tensor2D, training: boolean, options: EmbedOptions = {}): Embeddings {
    return tidyEmbeddings(() => {
      const imageFeatures = this.imageEncoder.forward(patches, training);
      const geneFeatures = this.geneEncoder.forward(expression, training, options.dropoutSeed ?? 0);
      return this.embedFeatures(imageFeatures, geneFeatures);
    });
  }

  /** The head alone, from backbone features (fine-tuning with a frozen backbone on cached features). */
  embedFeatures(imageFeatures: tf.Tensor2D, geneFeatures: tf.Tensor2D): Embeddings {
    return tidyEmbeddings(() => {
      const imageProjected = tf.matMul(imageFeatures, this.param(HEAD.imageProjection)) as tf.Tensor2D;
      const geneProjected = tf.matMul(geneFeatures, this.param(HEAD.geneProjection)) as tf.Tensor2D;
      const logitScale = tf.exp(this.param(HEAD.logLogitScale)) as tf.Scalar;
      if (!this.hyperbolic) {
        const common = { imageFeatures, geneFeatures, curvature: null, logitScale };
        return {
          ...common,
          imageTangent: imageProjected,
          geneTangent: geneProjected,
          image: imageProjected,
          gene: geneProjected,
        };
      }
      const curvature = tf.exp(this.param(HEAD.logCurvature)) as tf.Scalar;
      const imageTangent = tf.mul(imageProjected, tf.exp(this.param(HEAD.imageAlpha))) as tf.Tensor2D;
      const geneTangent = tf.mul(geneProjected, tf.exp(this.param(HEAD.geneAlpha))) as tf.Tensor2D;
      const image = expMap0(imageTangent, curvature);
      const gene = expMap0(geneTangent, curvature);
      return { imageFeatures, geneFeatures, imageTangent, geneTangent, image, gene, curvature, logitScale };
    });
  }

  /**
   * MERU's clamps, after every optimizer step: alpha <= 0 (scale never above 1), c within [c0/10, 10 c0],
   * s <= 100.
   */
  clampParameters(): void {
    tf.tidy(() => {
      const logS = this.store.get(HEAD.logLogitScale);
      logS.assign(tf.minimum(logS, Math.log(MAX_LOGIT_SCALE)));
      if (!this.hyperbolic) return;
      for (const name of [HEAD.imageAlpha, HEAD.geneAlpha]) {
        const alpha = this.store.get(name);
        alpha.assign(tf.minimum(alpha, 0));
      }
      const [low, high] = this.logCurvatureBounds();
      const logC = this.store.get(HEAD.logCurvature);
      logC.assign(tf.clipByValue(logC, low, high));
    });
  }

  /** [log(c0/10), log(10 c0)]. */
  logCurvatureBounds(): [number, number] {
    const logC0 = Math.log(this.config.initCurvature);
    return [logC0 - Math.log(CURVATURE_RANGE), logC0 + Math.log(CURVATURE_RANGE)];
  }

  /** Current curvature c, logit scale s and alphas as plain numbers (read asynchronously, as webgpu needs). */
  async scalars(): Promise<{
    curvature: number | null;
    logitScale: number;
    imageAlpha: number | null;
    geneAlpha: number | null;
  }> {
    const log = async (name: string) => (this.store.has(name) ? (await this.store.get(name).data())[0] : null);
    const [logC, logS, imageAlpha, geneAlpha] = await Promise.all(
      [HEAD.logCurvature, HEAD.logLogitScale, HEAD.imageAlpha, HEAD.geneAlpha].map(log),
    );
    return {
      curvature: logC === null ? null : Math.exp(logC),
      logitScale: Math.exp(logS as number),
      imageAlpha,
      geneAlpha,
    };
  }

  dispose(): void {
    this.store.dispose();
  }

  private param(name: string): tf.Variable {
    return this.store.get(name);
  }

  /** Projections N(0, width^-1/2) without bias; alpha = log(D^-1/2); log c0; log s0 (§3). */
  private addHead(rng: Rng): void {
    const { embedDim: d, initCurvature, learnCurvature, initLogitScale } = this.config;
    const imageWidth = this.imageEncoder.outputWidth;
    const geneWidth = this.geneEncoder.outputWidth;
    this.store.add(HEAD.imageProjection, [imageWidth, d], normalArray(rng, imageWidth * d, imageWidth ** -0.5));
    this.store.add(HEAD.geneProjection, [geneWidth, d], normalArray(rng, geneWidth * d, geneWidth ** -0.5));
    if (this.hyperbolic) {
      const alpha = Math.log(d ** -0.5);
      this.store.add(HEAD.imageAlpha, [], alpha, { decay: false });
      this.store.add(HEAD.geneAlpha, [], alpha, { decay: false });
      this.store.add(HEAD.logCurvature, [], Math.log(initCurvature), { trainable: learnCurvature, decay: false });
    }
    this.store.add(HEAD.logLogitScale, [], initLogitScale, { decay: false });
  }
}

/** tf.tidy for Embeddings (tidy's types reject the null curvature of clip mode; at run time null is fine). */
function tidyEmbeddings(fn: () => Embeddings): Embeddings {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as Embeddings;
}

export function createDelstModel(config: ModelConfig, seed = 0): DelstModel {
  return new DelstModel(config, seed);
}

// AdamW with decoupled weight decay (Loshchilov & Hutter; PyTorch's torch.optim.AdamW) and the warm-up + cosine
// learning-rate schedule of MERU (docs/delst-method.md §3, §4.8), written by hand over tfjs variables so that the
// state (moments and step count) goes into a checkpoint's optimizer slots and a resumed run continues exactly.
//
// One step, for each param p with gradient g, at step t = 1, 2, ... and learning rate lr:
//   p <- p (1 - lr wd)                              only where the param's decay flag is set
//   m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
//   p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// which is PyTorch's order (decay first, from the pre-update value) and its placement of eps (outside the root).
// eps defaults to 1e-8 (PyTorch's and MERU's): in float32, sqrt(v_hat) + 1e-8 is safe because v_hat >= 0, and a
// param whose gradient is exactly 0 gets a zero update (m = 0). Biases, norms, alpha, curvature and the logit
// scale carry decay: false in the ParamStore (MERU's intent; see the `or` quirk of §3). On webgpu the same update
// runs as three fused shaders per param (webgpu/adamw.ts).

import * as tf from '@tensorflow/tfjs';
import type { NamedArray, OptimizerState } from './checkpoint.js';
import type { ParamEntry } from './params.js';
import { adamwUpdateWebgpu, type AdamWStepConstants } from './webgpu/adamw.js';

export interface AdamWSettings {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  /** Decoupled weight decay wd (MERU: 0.2), applied as p <- p (1 - lr wd) to params flagged for decay. */
  readonly weightDecay: number;
}

/** MERU's AdamW: betas (0.9, 0.98), wd 0.2; eps as PyTorch's default. */
export const DEFAULT_ADAMW: AdamWSettings = Object.freeze({ beta1: 0.9, beta2: 0.98, epsilon: 1e-8, weightDecay: 0.2 });

export const ADAMW_KIND = 'adamw';

interface Slot {
  readonly name: string;
  readonly variable: tf.Variable;
  readonly decay: boolean;
  readonly m: tf.Variable;
  readonly v: tf.Variable;
}

/** The optimizer state as loadCheckpoint returns it. */
export interface LoadedOptimizerState {
  readonly kind: string;
  readonly step: number;
  readonly settings?: Record<string, unknown>;
  readonly slots: ReadonlyMap<string, NamedArray>;
}

export class AdamW {
  readonly settings: AdamWSettings;
  private readonly slots: Slot[];
  private t = 0;
  private disposed = false;

  /** Updates the given params (e.g. `store.trainableEntries()`), honouring each one's decay flag. */
  constructor(params: readonly ParamEntry[], settings: Partial<AdamWSettings> = {}) {
    this.settings = checkSettings({ ...DEFAULT_ADAMW, ...settings });
    this.slots = params.map((p) => ({
      name: p.name,
      variable: p.variable,
      decay: p.decay,
      m: zeroVariable(p.variable.shape),
      v: zeroVariable(p.variable.shape),
    }));
  }

  /** Steps taken so far (t of the bias correction). */
  get step(): number {
    return this.t;
  }

  /** Param names in update order. */
  get paramNames(): string[] {
    return this.slots.map((s) => s.name);
  }

  /**
   * One AdamW step at learning rate `lr`. `grads` is keyed by tf variable name (what tf.variableGrads returns); a
   * param without a gradient is left alone (no decay either, as PyTorch skips params whose grad is None).
   * The caller still owns (and disposes) the gradients.
   */
  apply(grads: tf.NamedTensorMap, lr: number): void {
    if (this.disposed) throw new Error('the optimizer was disposed');
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`learning rate must be a finite number >= 0, got ${lr}`);
    this.t += 1;
    const { beta1, beta2, epsilon, weightDecay } = this.settings;
    const correction1 = 1 - beta1 ** this.t;
    const sqrtCorrection2 = Math.sqrt(1 - beta2 ** this.t);
    const decayFactor = 1 - lr * weightDecay;
    const stepSize = lr / correction1;
    // On webgpu three fused shaders per param; elsewhere the same arithmetic as tfjs ops.
    const update = tf.getBackend() === 'webgpu' ? adamwUpdateWebgpu : adamwUpdateOps;
    tf.tidy(() => {
      for (const slot of this.slots) {
        const g = grads[slot.variable.name];
        if (!g) continue;
        const decay = slot.decay && weightDecay !== 0 ? decayFactor : 1;
        const constants = { beta1, beta2, epsilon, stepSize, sqrtCorrection2, decayFactor: decay };
        const next = update(slot.variable, g, slot.m, slot.v, constants);
        slot.m.assign(next.m);
        slot.v.assign(next.v);
        slot.variable.assign(next.param);
      }
    });
  }

  /** Moments and step for a checkpoint: slots 'm/<param>' and 'v/<param>' (tensors; the saver reads them). */
  exportState(): OptimizerState {
    const slots = new Map<string, tf.Tensor>();
    for (const s of this.slots) {
      slots.set(`m/${s.name}`, s.m);
      slots.set(`v/${s.name}`, s.v);
    }
    return { kind: ADAMW_KIND, step: this.t, settings: { ...this.settings }, slots };
  }

  /** Restores moments and step saved by exportState; every param of this optimizer must have both slots. */
  importState(state: LoadedOptimizerState): void {
    if (state.kind !== ADAMW_KIND) throw new Error(`optimizer state is '${state.kind}', not '${ADAMW_KIND}'`);
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`optimizer state: bad step ${state.step}`);
    for (const s of this.slots) {
      for (const [key, target] of [
        [`m/${s.name}`, s.m],
        [`v/${s.name}`, s.v],
      ] as const) {
        const saved = state.slots.get(key);
        if (!saved) throw new Error(`optimizer state has no slot ${key}`);
        if (saved.shape.length !== target.shape.length || saved.shape.some((d, i) => d !== target.shape[i])) {
          throw new Error(`optimizer slot ${key} is [${saved.shape}], the param is [${target.shape}]`);
        }
        tf.tidy(() => target.assign(tf.tensor(saved.data, target.shape)));
      }
    }
    this.t = state.step;
  }

  dispose(): void {
    if (this.disposed) return;
    for (const s of this.slots) tf.dispose([s.m, s.v]);
    this.disposed = true;
  }
}

/** New (param, m, v) for param `p` with gradient `g`, as tfjs ops (webgpu/adamw.ts does the same in shaders). */
function adamwUpdateOps(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  c: AdamWStepConstants,
): { param: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  const m1 = tf.add(tf.mul(m, c.beta1), tf.mul(g, 1 - c.beta1));
  const v1 = tf.add(tf.mul(v, c.beta2), tf.mul(tf.square(g), 1 - c.beta2));
  const denominator = tf.add(tf.div(tf.sqrt(v1), c.sqrtCorrection2), c.epsilon);
  const decayed = c.decayFactor === 1 ? p : tf.mul(p, c.decayFactor);
  return { param: tf.sub(decayed, tf.mul(tf.div(m1, denominator), c.stepSize)), m: m1, v: v1 };
}

/** A non-trainable variable of zeros (tf.variable shares the initial tensor's data: that tensor is disposed). */
function zeroVariable(shape: readonly number[]): tf.Variable {
  const zeros = tf.zeros([...shape]);
  const variable = tf.variable(zeros, false);
  zeros.dispose();
  return variable;
}

function checkSettings(s: AdamWSettings): AdamWSettings {
  const inUnit = (name: string, v: number) => {
    if (!(v >= 0 && v < 1)) throw new Error(`AdamW: ${name} must be in [0, 1), got ${v}`);
  };
  inUnit('beta1', s.beta1);
  inUnit('beta2', s.beta2);
  if (!(s.epsilon > 0) || !Number.isFinite(s.epsilon)) throw new Error(`AdamW: epsilon must be > 0, got ${s.epsilon}`);
  if (!(s.weightDecay >= 0) || !Number.isFinite(s.weightDecay)) {
    throw new Error(`AdamW: weight decay must be a finite number >= 0, got ${s.weightDecay}`);
  }
  return Object.freeze({ ...s });
}

// ---- schedule ---------------------------------------------------------------------------------------------------

export interface ScheduleSettings {
  readonly baseLr: number;
  readonly totalSteps: number;
  /** Share of the steps spent in the linear warm-up (default 0.05). */
  readonly warmupFraction: number;
}

/** Warm-up steps: ceil(fraction x total) (at least one when the fraction is > 0), never all of them. */
export function warmupSteps(totalSteps: number, warmupFraction: number): number {
  if (warmupFraction <= 0 || totalSteps <= 1) return 0;
  return Math.min(totalSteps - 1, Math.max(1, Math.ceil(warmupFraction * totalSteps)));
}

/**
 * Learning rate of optimizer step `step` (0-based): linear warm-up lr (step + 1) / W over the first W steps (the
 * first step is not wasted at 0, unlike PyTorch's LambdaLR convention), then a cosine from lr down to 0 over the
 * rest: lr (1 + cos(pi k / (T - W))) / 2 at step W + k (MERU writes it cos^2(pi/2 x), the same curve).
 * Steps beyond the total get 0.
 */
export function learningRate(step: number, schedule: ScheduleSettings): number {
  const { baseLr, totalSteps } = schedule;
  const warmup = warmupSteps(totalSteps, schedule.warmupFraction);
  if (step < warmup) return (baseLr * (step + 1)) / warmup;
  if (step >= totalSteps) return 0;
  const progress = (step - warmup) / (totalSteps - warmup);
  return baseLr * 0.5 * (1 + Math.cos(Math.PI * progress));
}

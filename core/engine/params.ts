// Every number a model holds, by name: weights, biases, norms, the geometry scalars and the BatchNorm running
// statistics. Models are functions over this store, so the optimizer, checkpoints and (later) the gradient
// all-reduce treat every model the same way: list the trainable variables, flatten them, write them back.

import * as tf from '@tensorflow/tfjs';

export interface ParamOptions {
  /** Receives gradients (false for BatchNorm running statistics and frozen parts). Default true. */
  readonly trainable?: boolean;
  /** Gets decoupled weight decay. Default: true for trainable params; say false for biases, norms and scalars. */
  readonly decay?: boolean;
}

export interface ParamEntry {
  readonly name: string;
  readonly variable: tf.Variable;
  readonly shape: readonly number[];
  readonly size: number;
  readonly trainable: boolean;
  readonly decay: boolean;
}

/** Where one param lies in a flat float32 array. */
export interface ParamLayout {
  readonly name: string;
  readonly shape: readonly number[];
  /** In float32 elements. */
  readonly offset: number;
  readonly size: number;
}

interface Entry {
  readonly variable: tf.Variable;
  readonly decay: boolean;
  /** Whether it was created trainable: freezing can turn it off, never a running statistic on. */
  readonly learnable: boolean;
}

export class ParamStore {
  private readonly items = new Map<string, Entry>();
  private disposed = false;

  /**
   * Adds a float32 param. tf variable names are global to the tfjs engine, so the variable gets an automatic
   * one (two models may live side by side); the store's name is what checkpoints and optimizers use.
   */
  add(name: string, shape: readonly number[], values: Float32Array | number, options: ParamOptions = {}): tf.Variable {
    if (this.disposed) throw new Error('the param store was disposed');
    if (this.items.has(name)) throw new Error(`param ${name} already exists`);
    const trainable = options.trainable ?? true;
    const initial =
      typeof values === 'number' ? tf.fill([...shape], values, 'float32') : tf.tensor(values, [...shape], 'float32');
    const variable = tf.variable(initial, trainable);
    initial.dispose();
    this.items.set(name, { variable, decay: trainable && (options.decay ?? true), learnable: trainable });
    return variable;
  }

  has(name: string): boolean {
    return this.items.has(name);
  }

  get(name: string): tf.Variable {
    const entry = this.items.get(name);
    if (!entry) throw new Error(`no param ${name}`);
    return entry.variable;
  }

  names(): string[] {
    return [...this.items.keys()];
  }

  /** All params in creation order, optionally filtered. */
  entries(filter?: (entry: ParamEntry) => boolean): ParamEntry[] {
    const all = [...this.items].map(([name, { variable, decay }]) => ({
      name,
      variable,
      shape: variable.shape,
      size: variable.size,
      trainable: variable.trainable,
      decay,
    }));
    return filter ? all.filter(filter) : all;
  }

  /** The variables an optimizer updates, in a fixed order. */
  trainable(): tf.Variable[] {
    return this.entries((e) => e.trainable).map((e) => e.variable);
  }

  trainableEntries(): ParamEntry[] {
    return this.entries((e) => e.trainable);
  }

  /**
   * Freezes or unfreezes the params whose names match (e.g. `name.startsWith('image.')` for `--freeze backbone`).
   * Params created non-trainable (running statistics) stay so. Returns how many params matched.
   */
  setTrainable(match: (name: string) => boolean, trainable: boolean): number {
    let matched = 0;
    for (const [name, entry] of this.items) {
      if (!match(name)) continue;
      entry.variable.trainable = trainable && entry.learnable;
      matched++;
    }
    return matched;
  }

  /** Number of scalars, optionally of the matching params only. */
  count(filter?: (entry: ParamEntry) => boolean): number {
    return this.entries(filter).reduce((n, e) => n + e.size, 0);
  }

  /** Offsets of the named params (default: all) in a flat array, in the given order. */
  layout(names: readonly string[] = this.names()): ParamLayout[] {
    let offset = 0;
    return names.map((name) => {
      const { shape, size } = this.get(name);
      const item = { name, shape: [...shape], offset, size };
      offset += size;
      return item;
    });
  }

  /** The named params (default: all) as one float32 array, in `layout` order (read asynchronously, as webgpu needs). */
  flatten(names: readonly string[] = this.names()): Promise<Float32Array> {
    return packTensors(names.map((name) => this.get(name)));
  }

  /** Writes `flat` back into the params of `layout` (from `layout()` or a checkpoint), checking shapes. */
  assignFlat(flat: Float32Array, layout: readonly ParamLayout[] = this.layout()): void {
    for (const item of layout) {
      const variable = this.get(item.name);
      if (!sameShape(variable.shape, item.shape)) {
        throw new Error(`param ${item.name} has shape [${variable.shape}], the values are [${item.shape}]`);
      }
      if (item.offset + item.size > flat.length) throw new Error(`the values end before param ${item.name}`);
      tf.tidy(() => variable.assign(tf.tensor(flat.subarray(item.offset, item.offset + item.size), variable.shape)));
    }
  }

  /** Gradients from `tf.variableGrads` (keyed by tf variable name) as one flat array in trainable order. */
  async flattenGrads(grads: tf.NamedTensorMap): Promise<Float32Array> {
    const vars = this.trainable();
    const out = new Float32Array(vars.reduce((n, v) => n + v.size, 0));
    const values = await Promise.all(vars.map((v) => grads[v.name]?.data() as Promise<Float32Array> | undefined));
    let offset = 0;
    vars.forEach((v, i) => {
      if (values[i]) out.set(values[i], offset); // a param the loss does not reach gets 0
      offset += v.size;
    });
    return out;
  }

  /** The inverse of `flattenGrads`: tensors keyed by tf variable name (the caller disposes them). */
  unflattenGrads(flat: Float32Array): tf.NamedTensorMap {
    const grads: tf.NamedTensorMap = {};
    let offset = 0;
    for (const v of this.trainable()) {
      grads[v.name] = tf.tensor(flat.subarray(offset, offset + v.size), v.shape);
      offset += v.size;
    }
    return grads;
  }

  dispose(): void {
    for (const { variable } of this.items.values()) variable.dispose();
    this.items.clear();
    this.disposed = true;
  }
}

/** Concatenates tensors' float32 values (one asynchronous read per tensor, no intermediate tensors). */
export async function packTensors(tensors: readonly tf.Tensor[], out?: Float32Array): Promise<Float32Array> {
  const total = tensors.reduce((n, t) => n + t.size, 0);
  const flat = out ?? new Float32Array(total);
  if (flat.length < total) throw new Error(`packTensors: ${flat.length} floats cannot hold ${total}`);
  const values = await Promise.all(tensors.map((t) => t.data() as Promise<Float32Array>));
  let offset = 0;
  values.forEach((v, i) => {
    flat.set(v, offset);
    offset += tensors[i].size;
  });
  return flat;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

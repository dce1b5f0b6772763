// Our wasm gradient kernels against the 'cpu' backend's reference implementations, on small random shapes.

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, useCpuReferenceBackend } from '../../core/engine/backend.js';
import { maxPoolGradKernel } from '../../core/engine/kernels/max-pool-grad.js';
import { OUR_WASM_KERNELS } from '../../core/engine/kernels/register.js';
import { batchNormTrain } from '../../core/engine/ops/batch-norm.js';
import { compareWithCpu, expectClose, randTensor } from './support/backend-compare.js';

const compare = (f: () => tf.Tensor[], tol?: number) => compareWithCpu('wasm', f, tol);

beforeAll(async () => {
  await initBackend('wasm');
});

describe('registration', () => {
  it('installs our kernels for wasm', async () => {
    await initBackend('wasm');
    for (const name of OUR_WASM_KERNELS) expect(tf.getKernel(name, 'wasm'), name).toBeDefined();
    expect(tf.getKernel('MaxPoolGrad', 'wasm')?.kernelFunc).toBe(maxPoolGradKernel);
  });
});

interface ConvCase {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: number;
  s: number;
  pad: 'same' | 'valid';
}

const convCases: ConvCase[] = [];
let seed = 0;
for (const k of [1, 3, 7]) {
  for (const s of [1, 2]) {
    for (const pad of ['same', 'valid'] as const) {
      for (const h of [9, 10]) {
        seed++;
        convCases.push({ n: 2, h, w: h + (seed % 3) - 1, ci: 2 + (seed % 3), co: 3 + (seed % 2), k, s, pad });
      }
    }
  }
}
// Non-square kernels and strides as the generic cases.
convCases.push({ n: 3, h: 11, w: 8, ci: 4, co: 5, k: 3, s: 2, pad: 'valid' });
convCases.push({ n: 1, h: 1, w: 5, ci: 2, co: 2, k: 1, s: 2, pad: 'same' });

describe('Conv2DBackpropInput and Conv2DBackpropFilter', () => {
  it.each(convCases)('k$k s$s $pad, [$n,$h,$w,$ci] -> $co', async (c) => {
    const i = c.k * 100 + c.h * 10 + c.s;
    await compare(() => {
      const x = randTensor([c.n, c.h, c.w, c.ci], i) as tf.Tensor4D;
      const filter = randTensor([c.k, c.k, c.ci, c.co], i + 1) as tf.Tensor4D;
      const y = tf.conv2d(x, filter, c.s, c.pad);
      const dy = randTensor(y.shape, i + 2);
      const [dx, dw] = tf.grads((a, b) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), dy)),
      )([x, filter]);
      return [y, dx, dw];
    });
  });

  it('handles rectangular kernels, strides and explicit padding', async () => {
    await compare(() => {
      const x = randTensor([2, 9, 10, 3], 7) as tf.Tensor4D;
      const filter = randTensor([3, 2, 3, 4], 8) as tf.Tensor4D;
      const dyShape = tf.conv2d(
        x,
        filter,
        [2, 3],
        [
          [0, 0],
          [1, 2],
          [0, 1],
          [0, 0],
        ],
      ).shape;
      const dy = randTensor(dyShape, 9) as tf.Tensor4D;
      const padding: tf.backend_util.ExplicitPadding = [
        [0, 0],
        [1, 2],
        [0, 1],
        [0, 0],
      ];
      return [
        tf.conv2dTranspose(dy, filter, x.shape, [2, 3], padding as unknown as 'same'),
        tf.grads((a) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, filter, [2, 3], padding), dy)))([x])[0],
        tf.grads((b) => tf.sum(tf.mul(tf.conv2d(x, b as tf.Tensor4D, [2, 3], padding), dy)))([filter])[0],
      ];
    });
  });

  it('makes the fused conv2d with bias and relu trainable', async () => {
    await compare(() => {
      const x = randTensor([2, 8, 8, 3], 11) as tf.Tensor4D;
      const filter = randTensor([3, 3, 3, 4], 12) as tf.Tensor4D;
      const bias = randTensor([4], 13) as tf.Tensor1D;
      return tf.grads((a, b, c) =>
        tf.sum(
          tf.fused.conv2d({
            x: a as tf.Tensor4D,
            filter: b as tf.Tensor4D,
            bias: c,
            strides: 2,
            pad: 'same',
            activation: 'relu',
          }),
        ),
      )([x, filter, bias]);
    });
  });
});

describe('MaxPoolGrad', () => {
  const cases = [
    { shape: [2, 9, 9, 3], k: 3, s: 2, pad: 'same' as const },
    { shape: [2, 8, 8, 4], k: 3, s: 2, pad: 'same' as const },
    { shape: [1, 7, 10, 2], k: 2, s: 2, pad: 'valid' as const },
    { shape: [2, 9, 8, 3], k: 3, s: 1, pad: 'same' as const },
    { shape: [1, 11, 11, 2], k: 3, s: 2, pad: 'valid' as const },
  ];
  it.each(cases)('$k x $k stride $s $pad on $shape', async (c) => {
    await compare(() => {
      const x = randTensor(c.shape, c.shape[1] * 7 + c.k) as tf.Tensor4D;
      const y = tf.maxPool(x, c.k, c.s, c.pad);
      const dy = randTensor(y.shape, 5);
      return [y, tf.grads((a) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, c.k, c.s, c.pad), dy)))([x])[0]];
    }, 1e-6);
  });
});

describe('BatchMatMul', () => {
  const combos = [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const;
  it.each(combos)('transposeA=%s transposeB=%s, 2D and batched', async (ta, tb) => {
    await compare(() => {
      const a = randTensor(ta ? [7, 5] : [5, 7], 21);
      const b = randTensor(tb ? [6, 7] : [7, 6], 22);
      const a3 = randTensor(ta ? [3, 7, 5] : [3, 5, 7], 23);
      const b3 = randTensor(tb ? [3, 6, 7] : [3, 7, 6], 24);
      const b1 = randTensor(tb ? [1, 6, 7] : [1, 7, 6], 25);
      const a1 = randTensor(ta ? [1, 7, 5] : [1, 5, 7], 26);
      const a21 = randTensor(ta ? [2, 1, 7, 5] : [2, 1, 5, 7], 27);
      const b12 = randTensor(tb ? [1, 2, 6, 7] : [1, 2, 7, 6], 28);
      return [
        tf.matMul(a, b, ta, tb),
        tf.matMul(a3, b3, ta, tb),
        tf.matMul(a3, b1, ta, tb),
        tf.matMul(a1, b3, ta, tb),
        tf.matMul(a21, b12, ta, tb),
      ];
    });
  });

  it('gives dense-layer gradients', async () => {
    await compare(() => {
      const x = randTensor([8, 12], 31);
      const w = randTensor([12, 5], 32);
      return tf.grads((a, b) => tf.sum(tf.square(tf.matMul(a, b))))([x, w]);
    });
  });
});

describe('Reverse', () => {
  const cases: { shape: number[]; axes: number[] }[] = [
    { shape: [3, 3, 4, 5], axes: [0, 1] },
    { shape: [2, 3, 4], axes: [2] },
    { shape: [2, 3, 4], axes: [0, 2] },
    { shape: [7], axes: [0] },
    { shape: [4, 1, 3], axes: [1] },
    { shape: [2, 5, 3, 2], axes: [1, 3] },
  ];
  it.each(cases)('$shape on axes $axes', async (c) => {
    await compare(() => [tf.reverse(randTensor(c.shape, c.shape.length), c.axes)], 0);
  });

  it('reverses int32', async () => {
    await initBackend('wasm');
    const r = tf.tidy(() => tf.reverse(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32'), [1]));
    expect(r.dtype).toBe('int32');
    expect(Array.from(r.dataSync())).toEqual([3, 2, 1, 6, 5, 4]);
    r.dispose();
  });
});

describe('GatherV2 and its gradient (UnsortedSegmentSum)', () => {
  it('gathers rows, columns and per batch like cpu, with gradients', async () => {
    await compare(() => {
      const x = randTensor([5, 4, 3], 81);
      const rows = tf.tensor1d([4, 0, 0, 2], 'int32');
      const cols = tf.tensor2d([3, 1, 0, 0, 2, 2], [2, 3], 'int32');
      const perBatch = tf.tensor2d([1, 0, 2, 3, 3, 0, 1, 1, 2, 0], [5, 2], 'int32');
      const f = (a: tf.Tensor) =>
        tf.add(
          tf.sum(tf.square(tf.gather(a, rows))),
          tf.add(tf.sum(tf.gather(a, cols, 1)), tf.sum(tf.mul(tf.gather(a, perBatch, 1, 1), 0.5))),
        );
      return [
        tf.gather(x, rows),
        tf.gather(x, cols, 1),
        tf.gather(x, perBatch, 1, 1),
        tf.gather(tf.tensor1d([7, 8, 9], 'int32'), rows.slice(1, 3)),
        tf.grads(f)([x])[0],
      ];
    }, 0);
  });

  it('rejects out-of-range indices', async () => {
    await initBackend('wasm');
    expect(() => tf.tidy(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([0, 3], 'int32')))).toThrow(/not in \[0, 2\]/);
  });
});

describe('a small ResNet-style network with the heads the models use', () => {
  it('has the same loss and gradients on wasm as on cpu', async () => {
    await compare(() => {
      const x = randTensor([2, 17, 17, 3], 41) as tf.Tensor4D;
      const params = {
        w1: randTensor([7, 7, 3, 4], 42),
        g1: tf.add(randTensor([4], 43), 1.5),
        b1: randTensor([4], 44),
        w2: randTensor([3, 3, 4, 4], 45),
        w3: randTensor([1, 1, 4, 6], 46),
        w4: randTensor([6, 5], 47),
        b4: randTensor([5], 48),
        emb: randTensor([7, 5], 49),
      };
      const names = Object.keys(params) as (keyof typeof params)[];
      const bn = (t: tf.Tensor4D, g: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(t, [0, 1, 2]);
        return tf.batchNorm(t, mean, variance, b as tf.Tensor1D, g as tf.Tensor1D, 1e-5);
      };
      const loss = (...ps: tf.Tensor[]) => {
        const p = Object.fromEntries(names.map((k, i) => [k, ps[i]])) as typeof params;
        const c1 = tf.conv2d(x, p.w1 as tf.Tensor4D, 2, 'same'); // 9x9
        let h = tf.relu(batchNormTrain(c1, p.g1 as tf.Tensor1D, p.b1 as tf.Tensor1D).y) as tf.Tensor4D;
        h = tf.maxPool(h, 3, 2, 'same'); // 5x5
        const c2 = tf.conv2d(h, p.w2 as tf.Tensor4D, 1, 'same');
        const r = tf.relu(tf.add(bn(c2, tf.onesLike(p.b1), tf.zerosLike(p.b1)), h)) as tf.Tensor4D;
        const f = tf.conv2d(r, p.w3 as tf.Tensor4D, 2, 'valid'); // 3x3x6
        const pooled = tf.mean(f, [1, 2]); // global average pool [2, 6]
        const z = tf.add(tf.matMul(pooled, p.w4), p.b4); // [2, 5]
        const gelu = tf.mul(tf.mul(z, 0.5), tf.add(1, tf.erf(tf.div(z, Math.SQRT2))));
        const { mean, variance } = tf.moments(gelu, -1, true);
        const ln = tf.div(tf.sub(gelu, mean), tf.sqrt(tf.add(variance, 1e-5)));
        const hyper = tf.add(tf.acosh(tf.add(tf.softplus(ln), 1.01)), tf.asinh(ln));
        const trig = tf.add(tf.sinh(tf.mul(ln, 0.3)), tf.cosh(tf.mul(ln, 0.2)));
        const angles = tf.add(tf.asin(tf.tanh(tf.mul(ln, 0.5))), tf.acos(tf.sigmoid(ln)));
        const logits = tf.add(tf.add(hyper, trig), tf.add(angles, tf.gather(p.emb, tf.tensor1d([3, 5], 'int32'))));
        const logp = tf.logSoftmax(logits);
        return tf.neg(tf.mean(tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d([1, 4], 'int32'), 5)), 1)));
      };
      const { value, grads } = tf.valueAndGrads(loss)(names.map((k) => params[k]));
      return [value, ...grads];
    }, 1e-4);
  });
});

describe('tf.layers on wasm', () => {
  it('trains a conv / batch-norm / max-pool / dense model like cpu', async () => {
    const build = () => {
      const model = tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [10, 10, 3], filters: 4, kernelSize: 3, padding: 'same', useBias: false }),
          tf.layers.batchNormalization(),
          tf.layers.activation({ activation: 'relu' }),
          tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }),
          tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same' }),
          tf.layers.globalAveragePooling2d({}),
          tf.layers.dense({ units: 3, activation: 'softmax' }),
        ],
      });
      model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
      model.setWeights(model.getWeights().map((w, i) => randTensor(w.shape, 60 + i)));
      return model;
    };
    const trainStep = async (backend: 'cpu' | 'wasm') => {
      if (backend === 'wasm') await initBackend('wasm');
      else await useCpuReferenceBackend();
      const model = build();
      const xs = randTensor([4, 10, 10, 3], 51);
      const ys = tf.oneHot(tf.tensor1d([0, 2, 1, 2], 'int32'), 3);
      const loss = (await model.trainOnBatch(xs, ys)) as number;
      const weights = model.getWeights().map((w) => Float32Array.from(w.dataSync()));
      tf.dispose([xs, ys]);
      model.dispose();
      return { loss, weights };
    };
    const ref = await trainStep('cpu');
    const got = await trainStep('wasm');
    expect(Number.isFinite(got.loss)).toBe(true);
    expect(got.loss).toBeCloseTo(ref.loss, 4);
    expectClose(got.weights, ref.weights);
  });
});

describe('gradients tfjs lacks for boolean-valued ops', () => {
  it('lets tf.where with a comparison of x be differentiated, as on cpu', async () => {
    await compare(() => {
      const x = randTensor([3, 4], 71);
      const f = (a: tf.Tensor) => {
        const masked = tf.where(tf.greater(a, 0.1), tf.square(a), tf.mul(a, 0.5));
        const both = tf.where(tf.logicalAnd(tf.less(a, 0.5), tf.notEqual(a, 0)), masked, tf.neg(masked));
        return tf.sum(tf.where(tf.logicalNot(tf.equal(a, 0.3)), both, tf.zerosLike(a)));
      };
      return [tf.grads(f)([x])[0]];
    });
  });
});

// The golden batch of docs/delst-method.md §2.2: image and gene tangent vectors of three spots, and the logit scale
// (1 / temperature 0.07). Shared by the geometry and the loss tests, whose golden values are computed from it.

export const V_IMG = [
  [0.3, -0.2, 0.5],
  [1.2, 0.4, -0.7],
  [-0.1, 0.05, 0.02],
];
export const V_GENE = [
  [0.1, -0.1, 0.2],
  [0.5, 0.1, -0.3],
  [0.0, 0.3, 0.1],
];
export const SCALE = 1 / 0.07;

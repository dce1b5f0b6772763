#!/usr/bin/env python3
"""PyTorch reference of the training step that `npm run bench -- train` times (bench/train.ts).

The same model, loss, optimizer and random data as the TypeScript engine's fixed benchmark configuration
(core/engine/config.ts DEFAULT_MODEL_CONFIG), in float32: a half-width ResNet-18 with BatchNorm on 112x112x3, the gene
MLP 1000 -> 512 (GELU) -> 512 with residual and LayerNorm, projections to D = 256 without bias, MERU's alphas,
learnable curvature and logit scale with their clamps, the DELST loss (lambda = beta = 0.2, gene entails image,
all-pairs intra-modal entailment on both modalities ordered by nnz) and AdamW (betas 0.9/0.98, wd 0.2 on weights
only, lr 1e-4). Weight init and data come from a port of core/engine/random.ts, so both sides start from the same
numbers (dropout masks differ: they come from each framework's own generator).

Each section mirrors one TypeScript file; each function names the TS function it mirrors. Convolutions and the
max-pool pad as TensorFlow's 'same' does (asymmetric for stride 2 on even sizes), so the networks are the same
function, not only the same shapes.

Usage:
  python3 delst_train_step.py [--device cpu|cuda] [--batch 64] [--steps 7] [--warmup 2] [--threads N] [--json]
                              [--no-tf32] [--channels-last] [--input-size 112]
  python3 delst_train_step.py --check --json [--golden FILE] [--batch B] [--input-size N]
Progress goes to stderr; with --json stdout holds one JSON object and nothing else.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# ---- random.ts ---------------------------------------------------------------------------------------------------

MASK32 = 0xFFFFFFFF
MULBERRY_INCREMENT = 0x6D2B79F5


def _imul(a: int, b: int) -> int:
    """Math.imul on unsigned 32-bit values: the low 32 bits of the product."""
    return (a * b) & MASK32


def _mulberry_mix(s):
    """The output function of mulberry32 on states `s` (Python ints or uint64 arrays); uniform in [0, 1)."""
    t = s
    t = ((t ^ (t >> 15)) * (t | 1)) & MASK32
    t = (t ^ ((t + (((t ^ (t >> 7)) * (t | 61)) & MASK32)) & MASK32)) & MASK32
    return ((t ^ (t >> 14)) & MASK32) / 4294967296.0


class Rng:
    """Rng (mulberry32): the same sequence as the TS generator for the same seed."""

    def __init__(self, seed: int):
        self.s = seed & MASK32

    def next(self) -> float:
        """Rng.next: uniform in [0, 1)."""
        self.s = (self.s + MULBERRY_INCREMENT) & MASK32
        return _mulberry_mix(self.s)

    def nexts(self, n: int) -> np.ndarray:
        """n successive next() values at once (the state only ever adds a constant, so they vectorise)."""
        steps = np.arange(1, n + 1, dtype=np.uint64)
        states = (np.uint64(self.s) + steps * np.uint64(MULBERRY_INCREMENT)) & np.uint64(MASK32)
        self.s = (self.s + n * MULBERRY_INCREMENT) & MASK32
        return _mulberry_mix(states)

    def normals(self, n: int) -> np.ndarray:
        """n successive Rng.normal() values (Box-Muller on two draws each; 1 - u keeps log away from 0)."""
        draws = self.nexts(2 * n)
        u = 1.0 - draws[0::2]
        v = draws[1::2]
        return np.sqrt(-2.0 * np.log(u)) * np.cos(2.0 * math.pi * v)


def derive_seed(seed: int, *labels) -> int:
    """deriveSeed: FNV-1a over the labels joined by NUL, then a murmur finaliser."""
    h = (0x811C9DC5 ^ (seed & MASK32)) & MASK32
    for ch in "\u0000".join(str(label) for label in labels):
        h = _imul(h ^ ord(ch), 0x01000193)
    h ^= h >> 16
    h = _imul(h, 0x85EBCA6B)
    h ^= h >> 13
    h = _imul(h, 0xC2B2AE35)
    return (h ^ (h >> 16)) & MASK32


def normal_array(rng: Rng, n: int, std: float) -> np.ndarray:
    """normalArray: n samples of N(0, std^2), computed in float64 and stored as float32."""
    return (rng.normals(n) * std).astype(np.float32)


# ---- config.ts ---------------------------------------------------------------------------------------------------

MODEL_CONFIG = {
    "image": {
        "inputSize": 112,
        "stemWidth": 32,
        "stageWidths": [32, 64, 128, 256],
        "blocksPerStage": [2, 2, 2, 2],
        "bnMomentum": 0.1,
        "bnEpsilon": 1e-5,
    },
    "gene": {"panelSize": 1000, "hidden": 512, "dropout": 0.1, "layerNormEpsilon": 1e-5},
    "embedDim": 256,
    "initCurvature": 1.0,
    "initLogitScale": math.log(1 / 0.07),
}

# bench/train.ts: the loss, optimizer and learning rate the benchmark trains with.
LOSS_CONFIG = {"lambda": 0.2, "beta": 0.2, "intraModalities": ["gene", "image"], "nnzMargin": 0.0}
ADAMW = {"betas": (0.9, 0.98), "eps": 1e-8, "weightDecay": 0.2}
BENCH_LR = 1e-4
BENCH_DATA_SEED = 7

# ---- params.ts ---------------------------------------------------------------------------------------------------


class ParamStore:
    """ParamStore: every number of the model by its TS name. Trainable params are leaf tensors with gradients;
    BatchNorm running statistics are plain tensors. Conv filters are kept in PyTorch's [cout, cin, k, k] layout and
    linear weights in the TS [in, out] layout (x @ W)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.tensors: dict[str, torch.Tensor] = {}
        self.decay: dict[str, bool] = {}
        self.tf_shapes: dict[str, list[int]] = {}

    def add(self, name, tf_shape, values, trainable=True, decay=True, layout=None):
        """ParamStore.add: a float32 param from a TS-layout array or a constant; `layout` permutes it for torch."""
        if isinstance(values, np.ndarray):
            data = torch.from_numpy(values.reshape(tf_shape))
            if layout is not None:
                data = data.permute(*layout)
            data = data.contiguous()
        else:
            data = torch.full(tuple(tf_shape), float(values), dtype=torch.float32)
        data = data.to(self.device)
        data.requires_grad_(trainable)
        self.tensors[name] = data
        self.decay[name] = trainable and decay
        self.tf_shapes[name] = list(tf_shape)

    def get(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def trainable(self) -> list[tuple[str, torch.Tensor]]:
        """ParamStore.trainableEntries: (name, tensor) in creation order."""
        return [(name, t) for name, t in self.tensors.items() if t.requires_grad]


# ---- models/image-encoder.ts -------------------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_TO_TORCH_FILTER = (3, 2, 0, 1)  # [k, k, cin, cout] -> [cout, cin, k, k]


def add_conv(store: ParamStore, name: str, k: int, cin: int, cout: int, rng: Rng) -> None:
    """addConv: He-normal filter, std sqrt(2 / fan_in), drawn in the TS [k, k, cin, cout] order."""
    fan_in = k * k * cin
    values = normal_array(rng, fan_in * cout, math.sqrt(2 / fan_in))
    store.add(name, [k, k, cin, cout], values, layout=TF_TO_TORCH_FILTER)


def add_batch_norm(store: ParamStore, name: str, channels: int) -> None:
    """addBatchNorm: gamma and beta (trainable, no decay), running mean and variance (not trainable)."""
    store.add(f"{name}.gamma", [channels], 1, decay=False)
    store.add(f"{name}.beta", [channels], 0, decay=False)
    store.add(f"{name}.runningMean", [channels], 0, trainable=False)
    store.add(f"{name}.runningVariance", [channels], 1, trainable=False)


class ImageEncoder:
    """ImageEncoder: stem conv 7x7/2 + BN + ReLU + max-pool 3x3/2, stages of basic blocks, global average pool."""

    def __init__(self, store: ParamStore, config: dict, rng: Rng, prefix: str = "image"):
        self.store = store
        self.config = config
        self.prefix = prefix
        self.channels_last = False
        add_conv(store, f"{prefix}.stem.conv", 7, 3, config["stemWidth"], rng)
        add_batch_norm(store, f"{prefix}.stem.bn", config["stemWidth"])
        self.blocks = []
        width = config["stemWidth"]
        for s, stage_width in enumerate(config["stageWidths"]):
            for b in range(config["blocksPerStage"][s]):
                stride = 2 if s > 0 and b == 0 else 1
                block = {
                    "name": f"{prefix}.stage{s + 1}.block{b + 1}",
                    "stride": stride,
                    "project": stride != 1 or width != stage_width,
                }
                add_basic_block(store, block, width, stage_width, rng)
                self.blocks.append(block)
                width = stage_width
        self.output_width = width

    def forward(self, patches: torch.Tensor, training: bool) -> torch.Tensor:
        """ImageEncoder.forward: patches [B, N, N, 3] in 0..255 -> features [B, outputWidth]."""
        p = self.prefix
        x = normalise_imagenet(patches, self.channels_last)
        x = F.relu(self.conv_bn(x, f"{p}.stem.conv", f"{p}.stem.bn", 2, training))
        x = max_pool_same(x, 3, 2)
        for block in self.blocks:
            x = self.basic_block(x, block, training)
        return x.mean(dim=(2, 3))

    def basic_block(self, x: torch.Tensor, block: dict, training: bool) -> torch.Tensor:
        """ImageEncoder.basicBlock: two 3x3 conv + BN, a 1x1 projection + BN on the shortcut where needed."""
        name, stride = block["name"], block["stride"]
        y = F.relu(self.conv_bn(x, f"{name}.conv1", f"{name}.bn1", stride, training))
        y = self.conv_bn(y, f"{name}.conv2", f"{name}.bn2", 1, training)
        shortcut = self.conv_bn(x, f"{name}.proj.conv", f"{name}.proj.bn", stride, training) if block["project"] else x
        return F.relu(y + shortcut)

    def conv_bn(self, x: torch.Tensor, conv: str, bn: str, stride: int, training: bool) -> torch.Tensor:
        """ImageEncoder.convBn: a 'same' convolution without bias, then BatchNorm."""
        y = conv2d_same(x, self.store.get(conv), stride)
        return apply_batch_norm(self.store, bn, y, training, self.config)


def add_basic_block(store: ParamStore, block: dict, cin: int, cout: int, rng: Rng) -> None:
    """addBasicBlock: params in the TS creation order (conv1, bn1, conv2, bn2, then the projection)."""
    add_conv(store, f"{block['name']}.conv1", 3, cin, cout, rng)
    add_batch_norm(store, f"{block['name']}.bn1", cout)
    add_conv(store, f"{block['name']}.conv2", 3, cout, cout, rng)
    add_batch_norm(store, f"{block['name']}.bn2", cout)
    if block["project"]:
        add_conv(store, f"{block['name']}.proj.conv", 1, cin, cout, rng)
        add_batch_norm(store, f"{block['name']}.proj.bn", cout)


def normalise_imagenet(patches: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """normaliseImageNet: (x/255 - mean) / std per channel as one multiply-add, then NHWC -> NCHW."""
    scale = torch.tensor([1 / (255 * s) for s in IMAGENET_STD], device=patches.device)  # float32
    shift = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)], device=patches.device)
    x = (patches * scale + shift).permute(0, 3, 1, 2)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: output ceil(size / stride), the odd pixel of padding after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def conv2d_same(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """tf.conv2d(x, w, stride, 'same'): symmetric padding goes to the convolution, asymmetric to an explicit pad."""
    k = weight.shape[-1]
    top, bottom = same_padding(x.shape[2], k, stride)
    left, right = same_padding(x.shape[3], k, stride)
    if top == bottom and left == right:
        return F.conv2d(x, weight, stride=stride, padding=(top, left))
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, stride=stride)


def max_pool_same(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """tf.maxPool(x, k, stride, 'same'): padding never wins the maximum."""
    top, bottom = same_padding(x.shape[2], k, stride)
    left, right = same_padding(x.shape[3], k, stride)
    return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=-math.inf), k, stride)


def apply_batch_norm(store: ParamStore, name: str, x: torch.Tensor, training: bool, config: dict) -> torch.Tensor:
    """applyBatchNorm: batch statistics in training (running ones move by momentum, variance unbiased), else the
    running statistics."""
    return F.batch_norm(
        x,
        store.get(f"{name}.runningMean"),
        store.get(f"{name}.runningVariance"),
        store.get(f"{name}.gamma"),
        store.get(f"{name}.beta"),
        training=training,
        momentum=config["bnMomentum"],
        eps=config["bnEpsilon"],
    )


# ---- models/gene-encoder.ts --------------------------------------------------------------------------------------


def add_linear(store: ParamStore, name: str, inputs: int, outputs: int, rng: Rng) -> None:
    """addLinear: weight [in, out] ~ N(0, 1/in), zero bias without decay."""
    store.add(f"{name}.weight", [inputs, outputs], normal_array(rng, inputs * outputs, 1 / math.sqrt(inputs)))
    store.add(f"{name}.bias", [outputs], 0, decay=False)


def add_layer_norm(store: ParamStore, name: str, width: int) -> None:
    """addLayerNorm: gamma 1 and beta 0, no decay."""
    store.add(f"{name}.gamma", [width], 1, decay=False)
    store.add(f"{name}.beta", [width], 0, decay=False)


def linear(store: ParamStore, name: str, x: torch.Tensor) -> torch.Tensor:
    """linear: x @ W + b."""
    return torch.addmm(store.get(f"{name}.bias"), x, store.get(f"{name}.weight"))


class GeneEncoder:
    """GeneEncoder: h = fc1(x); y = LayerNorm(h + fc2(Dropout(GELU(h))))."""

    def __init__(self, store: ParamStore, config: dict, rng: Rng, prefix: str = "gene"):
        self.store = store
        self.config = config
        self.prefix = prefix
        add_linear(store, f"{prefix}.fc1", config["panelSize"], config["hidden"], rng)
        add_linear(store, f"{prefix}.fc2", config["hidden"], config["hidden"], rng)
        add_layer_norm(store, f"{prefix}.norm", config["hidden"])
        self.output_width = config["hidden"]

    def forward(self, expression: torch.Tensor, training: bool) -> torch.Tensor:
        """GeneEncoder.forward: GELU is the tanh approximation, as the TS gelu(); dropout in training only."""
        p = self.prefix
        h = linear(self.store, f"{p}.fc1", expression)
        u = F.gelu(h, approximate="tanh")
        if training and self.config["dropout"] > 0:
            u = F.dropout(u, self.config["dropout"], training=True)
        y = h + linear(self.store, f"{p}.fc2", u)
        width = self.config["hidden"]
        gamma, beta = self.store.get(f"{p}.norm.gamma"), self.store.get(f"{p}.norm.beta")
        return F.layer_norm(y, (width,), gamma, beta, self.config["layerNormEpsilon"])


# ---- models/delst-model.ts ---------------------------------------------------------------------------------------

MAX_LOGIT_SCALE = 100
CURVATURE_RANGE = 10
HEAD = {
    "imageProjection": "head.imageProjection",
    "geneProjection": "head.geneProjection",
    "imageAlpha": "head.imageAlpha",
    "geneAlpha": "head.geneAlpha",
    "logCurvature": "head.logCurvature",
    "logLogitScale": "head.logLogitScale",
}


class DelstModel:
    """DelstModel (delst mode): both encoders, projections without bias, alphas, curvature and logit scale."""

    def __init__(self, config: dict, device: torch.device, seed: int = 0):
        self.config = config
        self.store = ParamStore(device)
        self.image_encoder = ImageEncoder(self.store, config["image"], Rng(derive_seed(seed, "image")))
        self.gene_encoder = GeneEncoder(self.store, config["gene"], Rng(derive_seed(seed, "gene")))
        self.add_head(Rng(derive_seed(seed, "head")))

    def add_head(self, rng: Rng) -> None:
        """DelstModel.addHead: projections N(0, width^-1/2); alpha = log(D^-1/2); log c0; log s0."""
        d = self.config["embedDim"]
        image_width = self.image_encoder.output_width
        gene_width = self.gene_encoder.output_width
        store = self.store
        store.add(HEAD["imageProjection"], [image_width, d], normal_array(rng, image_width * d, image_width**-0.5))
        store.add(HEAD["geneProjection"], [gene_width, d], normal_array(rng, gene_width * d, gene_width**-0.5))
        alpha = math.log(d**-0.5)
        store.add(HEAD["imageAlpha"], [], alpha, decay=False)
        store.add(HEAD["geneAlpha"], [], alpha, decay=False)
        store.add(HEAD["logCurvature"], [], math.log(self.config["initCurvature"]), decay=False)
        store.add(HEAD["logLogitScale"], [], self.config["initLogitScale"], decay=False)

    def embed(self, patches: torch.Tensor, expression: torch.Tensor, training: bool) -> dict:
        """DelstModel.embed: both encoders, then the head."""
        image_features = self.image_encoder.forward(patches, training)
        gene_features = self.gene_encoder.forward(expression, training)
        return self.embed_features(image_features, gene_features)

    def embed_features(self, image_features: torch.Tensor, gene_features: torch.Tensor) -> dict:
        """DelstModel.embedFeatures: tangent = exp(alpha) W f, z = expMap0(tangent, c)."""
        get = self.store.get
        curvature = torch.exp(get(HEAD["logCurvature"]))
        image_tangent = (image_features @ get(HEAD["imageProjection"])) * torch.exp(get(HEAD["imageAlpha"]))
        gene_tangent = (gene_features @ get(HEAD["geneProjection"])) * torch.exp(get(HEAD["geneAlpha"]))
        return {
            "imageFeatures": image_features,
            "geneFeatures": gene_features,
            "image": exp_map0(image_tangent, curvature),
            "gene": exp_map0(gene_tangent, curvature),
            "curvature": curvature,
            "logitScale": torch.exp(get(HEAD["logLogitScale"])),
        }

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """DelstModel.clampParameters: log s <= log 100, alpha <= 0, log c within [log(c0/10), log(10 c0)]."""
        get = self.store.get
        get(HEAD["logLogitScale"]).clamp_(max=math.log(MAX_LOGIT_SCALE))
        get(HEAD["imageAlpha"]).clamp_(max=0)
        get(HEAD["geneAlpha"]).clamp_(max=0)
        log_c0 = math.log(self.config["initCurvature"])
        get(HEAD["logCurvature"]).clamp_(log_c0 - math.log(CURVATURE_RANGE), log_c0 + math.log(CURVATURE_RANGE))


# ---- lorentz.ts --------------------------------------------------------------------------------------------------

EPS = 1e-6
NORM_EPS = 1e-12
DEN_EPS = 1e-8
SINH_MAX = math.asinh(2**15)
MIN_RADIUS = 0.1


def safe_norm(x: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """safeNorm: sqrt(sum(x^2) + 1e-12) over the last axis (finite gradient at the zero vector)."""
    return torch.sqrt(torch.sum(x * x, dim=-1, keepdim=keepdim) + NORM_EPS)


def squared_norm_column(x: torch.Tensor) -> torch.Tensor:
    """squaredNormColumn: |x|^2 as a B x 1 column."""
    return torch.sum(x * x, dim=-1, keepdim=True)


def exp_map0(v: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """expMap0: x = sinh(sqrt(c)|v|) v / (sqrt(c)|v|), sinh argument clamped to [EPS, asinh(2^15)], divisor >= EPS."""
    r = torch.sqrt(c) * safe_norm(v, keepdim=True)
    return v * (torch.sinh(torch.clamp(r, EPS, SINH_MAX)) / torch.clamp(r, min=EPS))


def time_excess_column(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """timeExcessColumn: sqrt(c) x0 - 1 = c|x|^2 / (1 + sqrt(1 + c|x|^2)), B x 1, without cancellation."""
    cx2 = c * squared_norm_column(x)
    return cx2 / (1 + torch.sqrt(1 + cx2))


def cosh_distance_minus_one(xm: torch.Tensor, ym: torch.Tensor, dot: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """coshDistanceMinusOne: cosh(sqrt(c) d) - 1 = xm ym + xm + ym - c x.y (broadcastable)."""
    return xm * ym + xm + ym - c * dot


def acosh_one_plus(a: torch.Tensor) -> torch.Tensor:
    """acoshOnePlus: acosh(1 + a) = log1p(a + sqrt(a (a + 2))) with a floored at EPS."""
    safe = torch.clamp(a, min=EPS)
    return torch.log1p(safe + torch.sqrt(safe * (safe + 2)))


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """pairwiseDistance: d(x_i, y_j) = acosh(-c<x,y>_L) / sqrt(c), B1 x B2."""
    ym = time_excess_column(y, c).reshape(1, -1)
    a = cosh_distance_minus_one(time_excess_column(x, c), ym, x @ y.T, c)
    return acosh_one_plus(a) / torch.sqrt(c)


def distance_to_origin(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """distanceToOrigin: asinh(sqrt(c)|x|) / sqrt(c), B."""
    sc = torch.sqrt(c)
    return torch.asinh(sc * safe_norm(x)) / sc


def half_aperture(x: torch.Tensor, c: torch.Tensor, k: float = MIN_RADIUS) -> torch.Tensor:
    """halfAperture: asin(2K / (sqrt(c)|x| + 1e-8)), argument clamped to [-1 + EPS, 1 - EPS], B."""
    den = torch.sqrt(c) * safe_norm(x) + DEN_EPS
    return torch.asin(torch.clamp(2 * k / den, -1 + EPS, 1 - EPS))


def exterior_angle_from_parts(xm, ym, a, x_norm, c) -> torch.Tensor:
    """exteriorAngleFromParts: acos(((ym - xm)/sqrt(c) - a x0) / (|x| sqrt(max(a (a + 2), EPS)) + 1e-8)), clamped."""
    sc = torch.sqrt(c)
    x_time = (1 + xm) / sc
    num = (ym - xm) / sc - a * x_time
    den = x_norm * torch.sqrt(torch.clamp(a * (a + 2), min=EPS)) + DEN_EPS
    return torch.acos(torch.clamp(num / den, -1 + EPS, 1 - EPS))


def exterior_angle(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """exteriorAngle: the angle at x of the triangle O-x-y, row-paired, B."""
    xm = time_excess_column(x, c)
    ym = time_excess_column(y, c)
    a = cosh_distance_minus_one(xm, ym, torch.sum(x * y, dim=-1, keepdim=True), c)
    return exterior_angle_from_parts(xm, ym, a, safe_norm(x, keepdim=True), c).reshape(-1)


def exterior_angle_pairwise(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """exteriorAnglePairwise: the exterior angle for every (parent row, child column) pair, B1 x B2."""
    xm = time_excess_column(x, c)
    ym = time_excess_column(y, c).reshape(1, -1)
    a = cosh_distance_minus_one(xm, ym, x @ y.T, c)
    return exterior_angle_from_parts(xm, ym, a, safe_norm(x, keepdim=True), c)


def entailment_loss(parent: torch.Tensor, child: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """entailmentLoss: mean_i max(0, ext(p_i, c_i) - aper(p_i))."""
    return torch.mean(F.relu(exterior_angle(parent, child, c) - half_aperture(parent, c)))


def entailment_matrix(parent: torch.Tensor, child: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """entailmentMatrix: max(0, ext(p_i, c_j) - aper(p_i)), B1 x B2."""
    aperture = half_aperture(parent, c).reshape(-1, 1)
    return F.relu(exterior_angle_pairwise(parent, child, c) - aperture)


# ---- losses.ts ---------------------------------------------------------------------------------------------------


def symmetric_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """symmetricCrossEntropy: 1/2 [CE(rows) + CE(columns)] with the diagonal as target."""
    diagonal = torch.diagonal(logits)
    rows = torch.mean(torch.logsumexp(logits, dim=1) - diagonal)
    columns = torch.mean(torch.logsumexp(logits, dim=0) - diagonal)
    return 0.5 * (rows + columns)


def hyperbolic_contrastive(image, gene, c, logit_scale) -> torch.Tensor:
    """hyperbolicContrastive: logits = -s d(image_i, gene_j)."""
    return symmetric_cross_entropy(-logit_scale * pairwise_distance(image, gene, c))


def cross_entailment(image, gene, c) -> torch.Tensor:
    """crossEntailment, direction 'geneEntailsImage': gene is the parent."""
    return entailment_loss(gene, image, c)


def all_pairs(keys: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """allPairs: (p, q) with key[p] < key[q] - delta, in the TS loop order (parent-major)."""
    parents, children = np.nonzero(keys[:, None] < keys[None, :] - np.float32(delta))
    return parents, children


def select_rows(z: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """selectRows: the given rows of z."""
    return z[torch.from_numpy(rows.astype(np.int64)).to(z.device)]


def pair_entailment(z: torch.Tensor, parents: np.ndarray, children: np.ndarray, c: torch.Tensor) -> torch.Tensor:
    """pairEntailment: mean entailment over the pairs; row-paired when there are at most B pairs, else the masked
    B x B matrix (what the benchmark's all-pairs sets take). Rows are picked by indexing, where the TS code uses a
    one-hot matmul (its gradient needs no scatter kernel on wasm)."""
    count, n = len(parents), z.shape[0]
    if count == 0:
        return torch.zeros((), device=z.device)
    if count <= n:
        return entailment_loss(select_rows(z, parents), select_rows(z, children), c)
    weights = np.zeros((n, n), dtype=np.float32)
    np.add.at(weights, (parents, children), np.float32(1 / count))
    return torch.sum(torch.from_numpy(weights).to(z.device) * entailment_matrix(z, z, c))


def intra_entailment(embeddings: dict, nnz: np.ndarray, c: torch.Tensor) -> torch.Tensor:
    """intraEntailment: all-pairs on raw nnz, averaged over the configured modalities."""
    parents, children = all_pairs(nnz, LOSS_CONFIG["nnzMargin"])
    terms = [pair_entailment(embeddings[m], parents, children, c) for m in LOSS_CONFIG["intraModalities"]]
    return torch.stack(terms).sum() / len(terms)


def compute_loss(image, gene, c, logit_scale, nnz: np.ndarray) -> dict:
    """computeLoss, delst mode: contrastive + lambda cross + beta intra."""
    contrastive = hyperbolic_contrastive(image, gene, c, logit_scale)
    cross = cross_entailment(image, gene, c)
    intra = intra_entailment({"image": image, "gene": gene}, nnz, c)
    total = contrastive + LOSS_CONFIG["lambda"] * cross + LOSS_CONFIG["beta"] * intra
    return {"total": total, "contrastive": contrastive, "crossEntailment": cross, "intraEntailment": intra}


# ---- optimizer.ts ------------------------------------------------------------------------------------------------


def make_adamw(store: ParamStore) -> torch.optim.AdamW:
    """AdamW with the decay flags of the ParamStore: weights decay, biases, norms and scalars do not.
    torch.optim.AdamW is the update the TS AdamW reproduces (decay first, eps outside the root)."""
    params = store.trainable()
    groups = [
        {"params": [t for name, t in params if store.decay[name]], "weight_decay": ADAMW["weightDecay"]},
        {"params": [t for name, t in params if not store.decay[name]], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=BENCH_LR, betas=ADAMW["betas"], eps=ADAMW["eps"])


# ---- trainer.ts --------------------------------------------------------------------------------------------------


def train_step(model: DelstModel, optimizer: torch.optim.AdamW, batch: dict, lr: float) -> dict:
    """trainStepAsync: loss and gradients, one read of [terms, mean |z|, loss, |grad|^2], then AdamW and the clamps
    only where the loss and the gradient are finite."""
    optimizer.zero_grad(set_to_none=True)
    e = model.embed(batch["patches"], batch["expression"], training=True)
    c = e["curvature"]
    terms = compute_loss(e["image"], e["gene"], c, e["logitScale"], batch["nnz"])
    terms["total"].backward()
    with torch.no_grad():
        grads = [t.grad for _, t in model.store.trainable() if t.grad is not None]
        grad_sq = torch.stack([torch.sum(g * g) for g in grads]).sum()
        stats = torch.stack(
            [
                terms["contrastive"],
                terms["crossEntailment"],
                terms["intraEntailment"],
                torch.mean(distance_to_origin(e["image"], c)),
                torch.mean(distance_to_origin(e["gene"], c)),
                terms["total"],
                grad_sq,
            ]
        )
    v = stats.tolist()
    applied = math.isfinite(v[5]) and math.isfinite(v[6])
    if applied:
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        model.clamp_parameters()
    keys = ["contrastive", "crossEntailment", "intraEntailment", "meanNormImage", "meanNormGene", "loss"]
    return {**dict(zip(keys, v[:6])), "gradNorm": math.sqrt(v[6]), "applied": applied}


# ---- bench/train.ts: the random batch ----------------------------------------------------------------------------


def bench_batch(batch: int, input_size: int, panel: int) -> dict:
    """The benchmark's batch from Rng(7), drawn in its order: uint8-range patches, expression nonzero with
    probability 0.3 and uniform in [0, 4), nnz = 500 + int(3000)."""
    rng = Rng(BENCH_DATA_SEED)
    patches = np.floor(rng.nexts(batch * input_size * input_size * 3) * 256).astype(np.float32)
    expression = np.zeros(batch * panel, dtype=np.float32)
    for i in range(expression.size):  # one or two draws per value: sequential
        if rng.next() < 0.3:
            expression[i] = 4 * rng.next()
    nnz = np.array([500 + math.floor(rng.next() * 3000) for _ in range(batch)], dtype=np.float32)
    return {
        "patches": patches.reshape(batch, input_size, input_size, 3),
        "expression": expression.reshape(batch, panel),
        "nnz": nnz,
    }


def to_device(batch: dict, device: torch.device) -> dict:
    """Patches and expression on the device; nnz stays a host array (pairs are built on the host, as in TS)."""
    return {
        "patches": torch.from_numpy(batch["patches"]).to(device),
        "expression": torch.from_numpy(batch["expression"]).to(device),
        "nnz": batch["nnz"],
    }


# ---- checks ------------------------------------------------------------------------------------------------------


def part_of(name: str) -> str:
    """The part a param belongs to, for the per-part counts."""
    if name.startswith("image."):
        return "imageEncoder"
    if name.startswith("gene."):
        return "geneEncoder"
    if name in (HEAD["imageProjection"], HEAD["geneProjection"]):
        return "projections"
    return "scalars"


def parameter_report(store: ParamStore) -> dict:
    """Trainable parameter count, per part, and each param's TS name, TS-layout shape, decay flag and initial sum."""
    by_part = {"imageEncoder": 0, "geneEncoder": 0, "projections": 0, "scalars": 0}
    params = []
    for name, t in store.trainable():
        by_part[part_of(name)] += t.numel()
        total = t.detach().double().sum().item()
        params.append({"name": name, "shape": store.tf_shapes[name], "decay": store.decay[name], "sum": total})
    return {"parameters": sum(by_part.values()), "parametersByPart": by_part, "params": params}


def read_golden(path: str) -> list[dict]:
    """The golden cases written by the TS test: [{name, image, gene (tangent rows), curvature, logitScale, nnz}]."""
    try:
        with open(path, encoding="utf-8") as f:
            cases = json.load(f)["cases"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"--golden {path}: cannot read the golden cases ({error})")
    for i, case in enumerate(cases):
        missing = [k for k in ("name", "image", "gene", "curvature", "logitScale", "nnz") if k not in case]
        if missing:
            raise SystemExit(f"--golden {path}: case {i} lacks {', '.join(missing)}")
        try:
            image, gene, nnz = (np.asarray(case[k], dtype=np.float32) for k in ("image", "gene", "nnz"))
        except (ValueError, TypeError) as error:
            raise SystemExit(f"--golden {path}: case {i}: {error}")
        if image.ndim != 2 or image.shape != gene.shape or nnz.shape != (image.shape[0],):
            raise SystemExit(f"--golden {path}: case {i}: image, gene and nnz must describe the same rows")
    return cases


def golden_losses(cases: list[dict]) -> list[dict]:
    """The loss terms of each golden case: tangent rows through expMap0, then computeLoss (float32, on the CPU)."""
    out = []
    for case in cases:
        c = torch.tensor(float(case["curvature"]), dtype=torch.float32)
        image = exp_map0(torch.tensor(case["image"], dtype=torch.float32), c)
        gene = exp_map0(torch.tensor(case["gene"], dtype=torch.float32), c)
        scale = torch.tensor(float(case["logitScale"]), dtype=torch.float32)
        terms = compute_loss(image, gene, c, scale, np.asarray(case["nnz"], dtype=np.float32))
        out.append({"name": case["name"], **{k: v.item() for k, v in terms.items()}})
    return out


@torch.no_grad()
def seeded_forward(config: dict, batch_size: int) -> dict:
    """The loss terms of the seeded model (seed 0) on the benchmark batch, without dropout: image encoder in training
    mode (batch statistics), gene encoder in inference mode. The TS test computes the same from its own model."""
    model = DelstModel(config, torch.device("cpu"), seed=0)
    batch = to_device(bench_batch(batch_size, config["image"]["inputSize"], config["gene"]["panelSize"]), "cpu")
    image_features = model.image_encoder.forward(batch["patches"], training=True)
    gene_features = model.gene_encoder.forward(batch["expression"], training=False)
    e = model.embed_features(image_features, gene_features)
    terms = compute_loss(e["image"], e["gene"], e["curvature"], e["logitScale"], batch["nnz"])
    return {
        "batch": batch_size,
        "inputSize": config["image"]["inputSize"],
        "imageFeatureSum": image_features.sum().item(),
        "imageFeatureFirst": image_features[0, :8].tolist(),
        "geneFeatureFirst": gene_features[0, :8].tolist(),
        **{k: v.item() for k, v in terms.items()},
    }


# ---- timing ------------------------------------------------------------------------------------------------------


def tf32_flags() -> dict:
    """What float32 matmuls and convolutions may use on CUDA (PyTorch >= 2.9 names them fp32_precision)."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    try:  # older versions raise AssertionError, not AttributeError, for unknown names
        return {"api": "fp32_precision", "matmul": matmul.fp32_precision, "cudnnConv": cudnn.conv.fp32_precision}
    except (AssertionError, AttributeError):
        return {"api": "allow_tf32", "matmul": bool(matmul.allow_tf32), "cudnnConv": bool(cudnn.allow_tf32)}


def disable_tf32() -> None:
    """Full float32 for matmuls and convolutions, through whichever API this PyTorch has."""
    if tf32_flags()["api"] == "fp32_precision":
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA; the processor's model name (Linux) or architecture on the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        models = []
    return models[0] if models else platform.processor() or platform.machine()


def timed_run(args, config: dict, device: torch.device) -> dict:
    """warmup + steps training steps; the clock is read after the device has finished (synchronize on CUDA)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    model = DelstModel(config, device, seed=0)
    model.image_encoder.channels_last = args.channels_last
    optimizer = make_adamw(model.store)
    batch = to_device(bench_batch(args.batch, config["image"]["inputSize"], config["gene"]["panelSize"]), device)
    sync()
    times, losses = [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        values = train_step(model, optimizer, batch, BENCH_LR)
        sync()
        seconds = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(seconds)
        losses.append(values["loss"])
        kind = "step" if i >= args.warmup else "warm-up"
        print(f"{kind} {i + 1}/{args.warmup + args.steps}: {seconds:.4f} s, loss {values['loss']:.4f}", file=sys.stderr)
    ordered = sorted(times)
    median = ordered[len(ordered) // 2]  # as bench/train.ts: the upper median for an even count
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device.type,
        "deviceName": device_name(device),
        "threads": torch.get_num_threads(),
        "tf32": tf32_flags(),
        "channelsLast": args.channels_last,
        "batch": args.batch,
        "inputSize": config["image"]["inputSize"],
        "warmupSteps": args.warmup,
        "measuredSteps": args.steps,
        "medianStepSeconds": round(median, 6),
        "minStepSeconds": round(ordered[0], 6),
        "maxStepSeconds": round(ordered[-1], 6),
        "spotsPerSecond": round(args.batch / median, 2),
        "parameters": sum(t.numel() for _, t in model.store.trainable()),
        "lossFirst": losses[0],
        "lossLast": losses[-1],
        "losses": losses,
    }


# ---- command line ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="delst_train_step.py", description="PyTorch reference of the bench's DELST training step."
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=7, help="measured steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="steps before the measured ones")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--input-size", type=int, default=MODEL_CONFIG["image"]["inputSize"], help="patch side")
    parser.add_argument("--no-tf32", action="store_true", help="full float32 matmuls and convolutions on CUDA")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format for the image encoder")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--check", action="store_true", help="parameter counts and loss checks instead of timing")
    parser.add_argument("--golden", metavar="FILE", help="with --check: golden loss cases (JSON) to evaluate")
    args = parser.parse_args(argv)
    if args.steps < 5:
        parser.error("--steps must be at least 5")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    if args.batch < 2:
        parser.error("--batch must be at least 2")
    if args.input_size < 8:
        parser.error("--input-size must be at least 8")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.golden and not args.check:
        parser.error("--golden goes with --check")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_tf32:
        disable_tf32()
    config = {**MODEL_CONFIG, "image": {**MODEL_CONFIG["image"], "inputSize": args.input_size}}
    if args.check:
        cases = read_golden(args.golden) if args.golden else None
        report = parameter_report(DelstModel(config, torch.device("cpu")).store)
        report["seededForward"] = seeded_forward(config, args.batch)
        if cases is not None:
            report["goldenLosses"] = golden_losses(cases)
    else:
        if args.device == "cuda" and not torch.cuda.is_available():
            print(f"--device cuda: this PyTorch ({torch.__version__}) sees no CUDA device", file=sys.stderr)
            return 2
        report = timed_run(args, config, torch.device(args.device))
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

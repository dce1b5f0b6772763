// The model's architecture and geometry settings: what a checkpoint must record to rebuild the same model.
// Training settings (losses, optimizer, schedule, batch) belong to the trainer, not here.

/** `clip`: Euclidean (raw projections, cosine logits); `meru` and `delst`: Lorentz hyperboloid embeddings. */
export type EmbeddingMode = 'clip' | 'meru' | 'delst';
export const EMBEDDING_MODES: readonly EmbeddingMode[] = ['clip', 'meru', 'delst'];

export interface ImageEncoderConfig {
  /** Side in pixels of the square patches the encoder sees. */
  readonly inputSize: number;
  /** Channels after the 7x7 stride-2 stem (followed by a 3x3 stride-2 max-pool). */
  readonly stemWidth: number;
  /** Channels of each stage of basic blocks; every stage after the first halves the resolution. */
  readonly stageWidths: readonly number[];
  readonly blocksPerStage: readonly number[];
  /** Weight of the batch statistics in the BatchNorm running averages (PyTorch convention). */
  readonly bnMomentum: number;
  readonly bnEpsilon: number;
}

export interface GeneEncoderConfig {
  /** Genes in the panel (the encoder's input width). */
  readonly panelSize: number;
  readonly hidden: number;
  readonly dropout: number;
  readonly layerNormEpsilon: number;
}

export interface ModelConfig {
  readonly mode: EmbeddingMode;
  readonly image: ImageEncoderConfig;
  readonly gene: GeneEncoderConfig;
  /** D: width of the shared embedding space. */
  readonly embedDim: number;
  /** c0 of the hyperboloid (curvature -c); learned within [c0/10, 10 c0] as MERU does. */
  readonly initCurvature: number;
  readonly learnCurvature: boolean;
  /** log s0 of the logit scale (MERU: log(1/0.07)); learned up to log 100. */
  readonly initLogitScale: number;
}

/** Settings as a user or a CLI gives them: any subset, the rest from the defaults. */
export interface ModelConfigInput {
  readonly mode?: EmbeddingMode;
  readonly image?: Partial<ImageEncoderConfig>;
  readonly gene?: Partial<GeneEncoderConfig>;
  readonly embedDim?: number;
  readonly initCurvature?: number;
  readonly learnCurvature?: boolean;
  readonly initLogitScale?: number;
}

/**
 * The defaults are the benchmark configuration of issue 3: ResNet-18 topology at half width on 112 px, gene MLP
 * 1000 -> 512 -> 512, D = 256 (the method notes suggest 512; 256 keeps the base model small and the benchmark
 * comparable).
 */
export const DEFAULT_MODEL_CONFIG: ModelConfig = Object.freeze({
  mode: 'delst',
  image: Object.freeze({
    inputSize: 112,
    stemWidth: 32,
    stageWidths: Object.freeze([32, 64, 128, 256]),
    blocksPerStage: Object.freeze([2, 2, 2, 2]),
    bnMomentum: 0.1,
    bnEpsilon: 1e-5,
  }),
  gene: Object.freeze({ panelSize: 1000, hidden: 512, dropout: 0.1, layerNormEpsilon: 1e-5 }),
  embedDim: 256,
  initCurvature: 1,
  learnCurvature: true,
  initLogitScale: Math.log(1 / 0.07),
});

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Defaults overlaid with `input`, validated. */
export function resolveModelConfig(input: ModelConfigInput = {}): ModelConfig {
  const d = DEFAULT_MODEL_CONFIG;
  return validateModelConfig({
    ...d,
    ...input,
    image: { ...d.image, ...input.image },
    gene: { ...d.gene, ...input.gene },
  });
}

/** The configuration with the gene panel's actual size (a panel can hold fewer genes than asked for). */
export function withPanelSize(config: ModelConfig, panelSize: number): ModelConfig {
  return validateModelConfig({ ...config, gene: { ...config.gene, panelSize } });
}

/** Checks a complete configuration (e.g. read from a manifest); throws ConfigError naming the bad setting. */
export function validateModelConfig(value: unknown): ModelConfig {
  const root = record(value, 'model config');
  onlyKeys(root, 'model config', [
    'mode',
    'image',
    'gene',
    'embedDim',
    'initCurvature',
    'learnCurvature',
    'initLogitScale',
  ]);
  const image = record(root.image, 'image');
  onlyKeys(image, 'image', ['inputSize', 'stemWidth', 'stageWidths', 'blocksPerStage', 'bnMomentum', 'bnEpsilon']);
  const gene = record(root.gene, 'gene');
  onlyKeys(gene, 'gene', ['panelSize', 'hidden', 'dropout', 'layerNormEpsilon']);

  if (!EMBEDDING_MODES.includes(root.mode as EmbeddingMode)) {
    throw new ConfigError(`mode must be one of ${EMBEDDING_MODES.join(', ')}, not ${JSON.stringify(root.mode)}`);
  }
  const stageWidths = intList(image.stageWidths, 'image.stageWidths');
  const blocksPerStage = intList(image.blocksPerStage, 'image.blocksPerStage');
  if (stageWidths.length !== blocksPerStage.length) {
    throw new ConfigError(
      `image.stageWidths and image.blocksPerStage must have one entry per stage (${stageWidths.length} vs ${blocksPerStage.length})`,
    );
  }
  const config: ModelConfig = {
    mode: root.mode as EmbeddingMode,
    image: {
      inputSize: int(image.inputSize, 'image.inputSize', 8),
      stemWidth: int(image.stemWidth, 'image.stemWidth'),
      stageWidths,
      blocksPerStage,
      bnMomentum: num(image.bnMomentum, 'image.bnMomentum', { min: 0, max: 1, openMin: true }),
      bnEpsilon: num(image.bnEpsilon, 'image.bnEpsilon', { min: 0, openMin: true }),
    },
    gene: {
      panelSize: int(gene.panelSize, 'gene.panelSize'),
      hidden: int(gene.hidden, 'gene.hidden'),
      dropout: num(gene.dropout, 'gene.dropout', { min: 0, max: 1, openMax: true }),
      layerNormEpsilon: num(gene.layerNormEpsilon, 'gene.layerNormEpsilon', { min: 0, openMin: true }),
    },
    embedDim: int(root.embedDim, 'embedDim'),
    initCurvature: num(root.initCurvature, 'initCurvature', { min: 0, openMin: true }),
    learnCurvature: bool(root.learnCurvature, 'learnCurvature'),
    initLogitScale: num(root.initLogitScale, 'initLogitScale', { max: Math.log(100) }),
  };
  return config;
}

// ---- checks ---------------------------------------------------------------------------------------------------

function record(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${name} must be an object`);
  }
  return value as Record<string, unknown>;
}

/** Unknown keys are typos more often than not: say so instead of silently using a default. */
function onlyKeys(value: Record<string, unknown>, name: string, known: string[]): void {
  const unknown = Object.keys(value).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    throw new ConfigError(`unknown setting ${name}.${unknown[0]} (known: ${known.join(', ')})`);
  }
}

function int(value: unknown, name: string, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new ConfigError(`${name} must be an integer >= ${min}, not ${JSON.stringify(value)}`);
  }
  return value;
}

function intList(value: unknown, name: string): number[] {
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError(`${name} must be a non-empty list`);
  return value.map((v, i) => int(v, `${name}[${i}]`));
}

interface Range {
  min?: number;
  max?: number;
  openMin?: boolean;
  openMax?: boolean;
}

function num(value: unknown, name: string, range: Range = {}): number {
  const { min = -Infinity, max = Infinity, openMin = false, openMax = false } = range;
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (openMin ? value > min : value >= min) &&
    (openMax ? value < max : value <= max);
  if (!ok) {
    const low = min === -Infinity ? '' : `${openMin ? '>' : '>='} ${min}`;
    const high = max === Infinity ? '' : `${openMax ? '<' : '<='} ${max}`;
    const bounds = [low, high].filter(Boolean).join(' and ');
    throw new ConfigError(`${name} must be a finite number${bounds ? ` ${bounds}` : ''}, not ${JSON.stringify(value)}`);
  }
  return value as number;
}

function bool(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new ConfigError(`${name} must be true or false, not ${JSON.stringify(value)}`);
  return value;
}

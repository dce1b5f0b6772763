// Model checkpoints that survive a kill at any moment.
//
// A model folder holds numbered, complete checkpoints and a pointer to the current one:
//
//   MODEL/latest.json            {"checkpoint": "ckpt-000007", "epoch": 5, "step": 1230}
//   MODEL/ckpt-000007/manifest.json, weights.bin[, optimizer.bin]
//   MODEL/ckpt-000006/...        the previous one, kept until a newer one is complete
//
// Saving writes a new checkpoint into a hidden temp folder, fsyncs every file and the folder, renames it to its
// final name, then replaces latest.json by writing a temp file and renaming it over (atomic on POSIX and on
// Windows' MoveFileEx). Until that last rename, readers see the previous checkpoint; after it, the new one.
// Killed in between, the leftovers (a temp folder, an unreferenced ckpt-N) are removed by the next save.
// A folder with manifest.json at its top (an exported model) is read as well.
//
// weights.bin: every param (trainable or not, BatchNorm running statistics included) as little-endian float32,
// concatenated in manifest order. optimizer.bin: the optimizer's slots (e.g. AdamW moments), same encoding, so a
// resumed run continues exactly. The manifest records sha256 sums, checked on load.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { processAlive } from '../process-alive.js';
import { validateModelConfig, type ModelConfig } from './config.js';
import { validateGenePanel, type GenePanel } from './gene-panel.js';
import { DelstModel } from './models/delst-model.js';
import type { ParamStore } from './params.js';

export const CHECKPOINT_FORMAT = 'delst-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;
const POINTER = 'latest.json';
const MANIFEST = 'manifest.json';
const WEIGHTS = 'weights.bin';
const OPTIMIZER = 'optimizer.bin';
const VERSION_PATTERN = /^ckpt-(\d+)$/;
const TEMP_PREFIX = '.tmp-';

/** A float32 array with a shape (optimizer slots, loaded values). */
export interface NamedArray {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface OptimizerState {
  /** e.g. 'adamw'. */
  readonly kind: string;
  /** Optimizer steps taken (bias correction of Adam needs it). */
  readonly step: number;
  /** Hyper-parameters, for the record and for checking a resume. */
  readonly settings?: Record<string, unknown>;
  /** Slot name (e.g. 'm/image.stem.conv') -> values. */
  readonly slots: ReadonlyMap<string, NamedArray | tf.Tensor>;
}

export interface DataRecord {
  readonly sections: readonly { readonly name: string; readonly source: string; readonly spots: number }[];
}

/** What a trainer hands over to be saved. */
export interface CheckpointContents {
  readonly config: ModelConfig;
  readonly store: ParamStore;
  readonly genePanel?: GenePanel | null;
  readonly data?: DataRecord | null;
  /** Trainer settings (mode, losses, optimizer, schedule, seed, backend): free-form JSON. */
  readonly training?: Record<string, unknown> | null;
  /** Metrics per epoch so far. */
  readonly metrics?: readonly Record<string, unknown>[];
  /** Epochs completed and optimizer steps taken. */
  readonly epoch: number;
  readonly step: number;
  readonly optimizer?: OptimizerState | null;
}

export interface TensorRecord {
  readonly name: string;
  readonly shape: readonly number[];
  /** In float32 elements from the start of the file. */
  readonly offset: number;
  readonly size: number;
}

export interface ParamRecord extends TensorRecord {
  readonly trainable: boolean;
  readonly decay: boolean;
}

export interface FileRecord {
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
}

export interface CheckpointManifest {
  readonly format: typeof CHECKPOINT_FORMAT;
  readonly formatVersion: number;
  readonly createdAt: string;
  /** package.json version of the code that wrote it. */
  readonly codeVersion: string;
  readonly config: ModelConfig;
  readonly params: readonly ParamRecord[];
  readonly weights: FileRecord;
  readonly genePanel: GenePanel | null;
  readonly data: DataRecord | null;
  readonly training: Record<string, unknown> | null;
  readonly metrics: readonly Record<string, unknown>[];
  readonly epoch: number;
  readonly step: number;
  readonly optimizer:
    (FileRecord & { kind: string; step: number; settings: Record<string, unknown>; slots: TensorRecord[] }) | null;
}

export interface LoadedCheckpoint {
  /** The folder the files were read from (MODEL/ckpt-N or an exported MODEL). */
  readonly path: string;
  readonly manifest: CheckpointManifest;
  readonly weights: Float32Array;
  readonly optimizer: {
    kind: string;
    step: number;
    settings: Record<string, unknown>;
    slots: Map<string, NamedArray>;
  } | null;
}

export interface SaveOptions {
  /** Complete checkpoints to keep, the new one included (default 2). */
  readonly keep?: number;
  /** Tests only: called as each step of the save begins, to kill the process there. */
  readonly onStage?: (stage: SaveStage) => void;
}

export type SaveStage = 'weights' | 'optimizer' | 'manifest' | 'publish' | 'pointer' | 'prune';

// ---- saving -----------------------------------------------------------------------------------------------------

/** Saves `contents` as the new current checkpoint of the model folder `dir`; returns the checkpoint's folder. */
export async function saveCheckpoint(
  dir: string,
  contents: CheckpointContents,
  options: SaveOptions = {},
): Promise<string> {
  if (os.endianness() !== 'LE')
    throw new Error('checkpoints are little-endian float32: big-endian hosts are not supported');
  const stage = options.onStage ?? (() => {});
  await fs.mkdir(dir, { recursive: true });
  const name = `ckpt-${String((await versionNumbers(dir)).reduce((a, b) => Math.max(a, b), 0) + 1).padStart(6, '0')}`;
  const temp = path.join(dir, `${TEMP_PREFIX}${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(temp);

  stage('weights');
  const layout = paramRecords(contents.store);
  const weights = await writeFloats(path.join(temp, WEIGHTS), await contents.store.flatten());
  stage('optimizer');
  const optimizer = contents.optimizer ? await writeOptimizer(temp, contents.optimizer) : null;
  stage('manifest');
  const manifest = buildManifest(contents, layout, weights, optimizer);
  await writeDurably(path.join(temp, MANIFEST), JSON.stringify(manifest, null, 1));
  await syncFolder(temp);

  stage('publish');
  const final = path.join(dir, name);
  await fs.rename(temp, final);
  await syncFolder(dir);
  stage('pointer');
  const pointer = { checkpoint: name, epoch: contents.epoch, step: contents.step };
  const pointerTemp = path.join(dir, `${TEMP_PREFIX}${POINTER}-${process.pid}`);
  await writeDurably(pointerTemp, JSON.stringify(pointer));
  await fs.rename(pointerTemp, path.join(dir, POINTER));
  await syncFolder(dir);
  stage('prune');
  await prune(dir, name, options.keep ?? 2);
  return final;
}

function paramRecords(store: ParamStore): ParamRecord[] {
  const entries = new Map(store.entries().map((e) => [e.name, e]));
  return store.layout().map((item) => ({
    ...item,
    trainable: entries.get(item.name)!.trainable,
    decay: entries.get(item.name)!.decay,
  }));
}

async function writeOptimizer(folder: string, state: OptimizerState) {
  const slots: TensorRecord[] = [];
  const arrays: Float32Array[] = [];
  let offset = 0;
  for (const [name, value] of state.slots) {
    const data = value instanceof tf.Tensor ? ((await value.data()) as Float32Array) : value.data;
    slots.push({ name, shape: [...value.shape], offset, size: data.length });
    arrays.push(data);
    offset += data.length;
  }
  const flat = new Float32Array(offset);
  arrays.forEach((a, i) => flat.set(a, slots[i].offset));
  const file = await writeFloats(path.join(folder, OPTIMIZER), flat);
  return { ...file, kind: state.kind, step: state.step, settings: state.settings ?? {}, slots };
}

function buildManifest(
  contents: CheckpointContents,
  params: ParamRecord[],
  weights: FileRecord,
  optimizer: CheckpointManifest['optimizer'],
): CheckpointManifest {
  const panel = contents.genePanel ?? null;
  if (panel && panel.genes.length !== contents.config.gene.panelSize) {
    throw new Error(
      `the gene panel has ${panel.genes.length} genes, the model reads ${contents.config.gene.panelSize}`,
    );
  }
  return {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    createdAt: new Date().toISOString(),
    codeVersion: codeVersion(),
    config: contents.config,
    params,
    weights,
    genePanel: panel,
    data: contents.data ?? null,
    training: contents.training ?? null,
    metrics: contents.metrics ?? [],
    epoch: contents.epoch,
    step: contents.step,
    optimizer,
  };
}

async function writeFloats(file: string, data: Float32Array): Promise<FileRecord> {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  await writeDurably(file, bytes);
  return { file: path.basename(file), bytes: bytes.length, sha256: sha256(bytes) };
}

/** Writes and fsyncs a file: after this, a power cut or kill cannot leave it half written. */
async function writeDurably(file: string, data: string | Uint8Array): Promise<void> {
  const handle = await fs.open(file, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncs a folder so that renames in it are durable; some platforms (Windows) cannot, which is fine there. */
async function syncFolder(folder: string): Promise<void> {
  let handle: fs.FileHandle | null = null;
  try {
    handle = await fs.open(folder, 'r');
    await handle.sync();
  } catch {
    // EISDIR / EPERM on Windows: its renames are durable without it.
  } finally {
    await handle?.close();
  }
}

async function versionNumbers(dir: string): Promise<number[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  return names.flatMap((n) => {
    const match = VERSION_PATTERN.exec(n) ?? new RegExp(`^${TEMP_PREFIX}ckpt-(\\d+)-`).exec(n);
    return match ? [Number(match[1])] : [];
  });
}

/** Keeps the current checkpoint and the `keep - 1` newest older ones; removes leftovers of interrupted saves. */
async function prune(dir: string, current: string, keep: number): Promise<void> {
  const currentNumber = Number(VERSION_PATTERN.exec(current)![1]);
  const names = await fs.readdir(dir);
  const older = names
    .filter((n) => VERSION_PATTERN.test(n) && Number(VERSION_PATTERN.exec(n)![1]) < currentNumber)
    .sort()
    .reverse();
  const kept = new Set([current, ...older.slice(0, Math.max(0, keep - 1))]);
  for (const n of names) {
    if ((VERSION_PATTERN.test(n) && !kept.has(n)) || n.startsWith(TEMP_PREFIX)) {
      await fs.rm(path.join(dir, n), { recursive: true, force: true });
    }
  }
}

/** Temp entries of saves, named with the writer's pid: `.tmp-ckpt-N-<pid>-<hex>/` and `.tmp-latest.json-<pid>`. */
const SAVE_TEMP_PATTERN = /^\.tmp-(?:ckpt-\d+-(\d+)-[0-9a-f]{8}|latest\.json-(\d+))$/;

/**
 * Removes what saves killed mid-way left in a model folder: temp entries whose writer process is gone. The next
 * save of the folder removes them too, but a run that is never resumed saves no more.
 */
export async function removeStaleSaves(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const match = SAVE_TEMP_PATTERN.exec(name);
    if (match && !processAlive(Number(match[1] ?? match[2]))) {
      await fs.rm(path.join(dir, name), { recursive: true, force: true });
    }
  }
}

/**
 * Writes the current checkpoint of `from` as a model for distribution at `to`: a flat folder with manifest.json and
 * weights.bin only (no optimizer state, no checkpoint history), which loadCheckpoint, loadModel and `--init` read.
 * The folder is built beside `to` and renamed into place; an existing `to` is replaced (moved aside first, removed
 * after). Returns the written manifest.
 */
export async function exportModel(from: string, to: string): Promise<CheckpointManifest> {
  const checkpoint = await loadCheckpoint(from);
  const target = path.resolve(to);
  const parent = path.dirname(target);
  await fs.mkdir(parent, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const temp = path.join(parent, `${TEMP_PREFIX}${path.basename(target)}-${tag}`);
  await fs.mkdir(temp);
  try {
    const used = checkpoint.manifest.params.reduce((n, p) => Math.max(n, p.offset + p.size), 0);
    const weights = await writeFloats(path.join(temp, WEIGHTS), checkpoint.weights.subarray(0, used));
    const manifest: CheckpointManifest = {
      ...checkpoint.manifest,
      createdAt: new Date().toISOString(),
      weights,
      optimizer: null,
    };
    await writeDurably(path.join(temp, MANIFEST), JSON.stringify(manifest, null, 1));
    await syncFolder(temp);
    const old = existsSync(target) ? path.join(parent, `${TEMP_PREFIX}${path.basename(target)}-old-${tag}`) : null;
    if (old) await fs.rename(target, old);
    await fs.rename(temp, target);
    await syncFolder(parent);
    if (old) await fs.rm(old, { recursive: true, force: true });
    return manifest;
  } catch (error) {
    await fs.rm(temp, { recursive: true, force: true });
    throw error;
  }
}

// ---- loading ----------------------------------------------------------------------------------------------------

/** Whether `dir` holds a checkpoint (a pointer or an exported manifest). */
export function hasCheckpoint(dir: string): boolean {
  return existsSync(path.join(dir, POINTER)) || existsSync(path.join(dir, MANIFEST));
}

/** Reads the current checkpoint of a model folder, checking its format and checksums. */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const folder = await currentFolder(dir);
  const manifest = parseManifest(await readText(path.join(folder, MANIFEST)), folder);
  const weights = await readFloats(folder, manifest.weights);
  const expected = manifest.params.reduce((n, p) => Math.max(n, p.offset + p.size), 0);
  if (weights.length < expected)
    throw new Error(`${folder}: ${WEIGHTS} holds ${weights.length} floats, the manifest needs ${expected}`);
  const optimizer = manifest.optimizer ? await readOptimizer(folder, manifest.optimizer) : null;
  return { path: folder, manifest, weights, optimizer };
}

async function currentFolder(dir: string): Promise<string> {
  const pointerFile = path.join(dir, POINTER);
  if (existsSync(pointerFile)) {
    const pointer = JSON.parse(await readText(pointerFile)) as { checkpoint?: unknown };
    if (typeof pointer.checkpoint !== 'string' || !VERSION_PATTERN.test(pointer.checkpoint)) {
      throw new Error(`${pointerFile}: does not name a checkpoint`);
    }
    return path.join(dir, pointer.checkpoint);
  }
  if (existsSync(path.join(dir, MANIFEST))) return dir;
  throw new Error(`${dir}: no checkpoint here (neither ${POINTER} nor ${MANIFEST})`);
}

function parseManifest(text: string, folder: string): CheckpointManifest {
  const manifest = JSON.parse(text) as CheckpointManifest;
  if (manifest.format !== CHECKPOINT_FORMAT) throw new Error(`${folder}: not a DELST checkpoint`);
  if (manifest.formatVersion > CHECKPOINT_FORMAT_VERSION) {
    throw new Error(
      `${folder}: checkpoint format ${manifest.formatVersion} is newer than this DELST Studio reads (${CHECKPOINT_FORMAT_VERSION})`,
    );
  }
  const config = validateModelConfig(manifest.config);
  const genePanel = manifest.genePanel ? validateGenePanel(manifest.genePanel) : null;
  return { ...manifest, config, genePanel };
}

async function readFloats(folder: string, record: FileRecord): Promise<Float32Array> {
  const file = path.join(folder, record.file);
  const bytes = await fs.readFile(file);
  if (bytes.length !== record.bytes || sha256(bytes) !== record.sha256) {
    throw new Error(`${file}: damaged (size or checksum differs from the manifest)`);
  }
  // Copy into an aligned buffer: a Buffer may sit at any byte offset of Node's pool.
  const floats = new Float32Array(bytes.length / 4);
  new Uint8Array(floats.buffer).set(bytes);
  return floats;
}

async function readOptimizer(folder: string, record: NonNullable<CheckpointManifest['optimizer']>) {
  const flat = await readFloats(folder, record);
  const slots = new Map<string, NamedArray>();
  for (const slot of record.slots) {
    slots.set(slot.name, { shape: slot.shape, data: flat.slice(slot.offset, slot.offset + slot.size) });
  }
  return { kind: record.kind, step: record.step, settings: record.settings, slots };
}

/**
 * Writes a checkpoint's values into `store`. Strict (default): the names and shapes must match exactly. Not strict
 * (`--init` from a model with another head): params without a matching entry keep their values and are listed.
 */
export function restoreParams(store: ParamStore, checkpoint: LoadedCheckpoint, strict = true): { skipped: string[] } {
  const saved = new Map(checkpoint.manifest.params.map((p) => [p.name, p]));
  const usable = store.names().filter((name) => {
    const record = saved.get(name);
    return record && sameShape(record.shape, store.get(name).shape);
  });
  const skipped = store.names().filter((name) => !usable.includes(name));
  const unused = [...saved.keys()].filter((name) => !store.has(name));
  if (strict && (skipped.length > 0 || unused.length > 0)) {
    const first = skipped[0] ?? unused[0];
    throw new Error(
      `${checkpoint.path}: the checkpoint does not fit this model (${skipped.length} params missing or of another ` +
        `shape, ${unused.length} unknown; first: ${first})`,
    );
  }
  store.assignFlat(
    checkpoint.weights,
    usable.map((name) => saved.get(name)!),
  );
  return { skipped };
}

/** Rebuilds the saved model: architecture from the manifest, then every value from weights.bin. */
export async function loadModel(dir: string): Promise<{ model: DelstModel; checkpoint: LoadedCheckpoint }> {
  const checkpoint = await loadCheckpoint(dir);
  const model = new DelstModel(checkpoint.manifest.config);
  try {
    restoreParams(model.store, checkpoint);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, checkpoint };
}

// ---- helpers ----------------------------------------------------------------------------------------------------

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function readText(file: string): Promise<string> {
  return fs.readFile(file, 'utf8');
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

let cachedVersion: string | null = null;

/** The version in DELST Studio's package.json, found above this file (source, dist/ or a packaged app). */
export function codeVersion(): string {
  if (cachedVersion) return cachedVersion;
  let folder = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    const file = path.join(folder, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'delst-studio' && pkg.version) return (cachedVersion = pkg.version);
    }
    folder = path.dirname(folder);
  }
  return (cachedVersion = 'unknown');
}

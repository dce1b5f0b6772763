// `delst train` and `delst embed` as users run them (the built bin, real data, a tiny model through the hidden
// --model-config option): JSON per epoch and a summary, one-line errors, SIGKILL then --resume, SIGINT saving a
// checkpoint and exiting 130, and .npy files numpy can read.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeNpy } from '../../core/engine/npy.js';

const root = resolve(import.meta.dirname, '../..');
const A1 = resolve(root, '../shared/data/her2st/A1');
const bin = join(root, 'bin/delst.js');
const TINY = JSON.stringify({
  image: { inputSize: 32, stemWidth: 8, stageWidths: [8, 8, 8, 8], blocksPerStage: [1, 1, 1, 1] },
  gene: { panelSize: 50, hidden: 16 },
  embedDim: 16,
});

let tmp: string;
beforeAll(async () => {
  if (!existsSync(join(root, 'dist/cli/train.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  tmp = await mkdtemp(join(tmpdir(), 'delst-cli-train-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function delst(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const jsonLines = (text: string): Json[] =>
  text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

/** Starts a training child; resolves once its first epoch line is out, with the child and its exit. */
function startTraining(args: string[]) {
  const child = spawn(process.execPath, [bin, 'train', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (done) => child.on('exit', (code, signal) => done({ code, signal, stdout, stderr })),
  );
  const firstEpoch = new Promise<void>((done, fail) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('"epoch":1')) done();
    });
    child.on('exit', () => fail(new Error(`training exited before its first epoch: ${stderr}`)));
  });
  return { child, firstEpoch, exited };
}

describe('delst train', () => {
  it('prints one JSON object per epoch and a summary', () => {
    const out = join(tmp, 'model');
    const run = delst('train', A1, '--mode', 'delst', '--epochs', '2', '--json', '--out', out, '--model-config', TINY);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = jsonLines(run.stdout);
    expect(lines).toHaveLength(3);
    for (const [i, line] of lines.slice(0, 2).entries()) {
      expect(line.epoch).toBe(i + 1);
      for (const key of ['loss', 'contrastive', 'crossEntailment', 'intraEntailment', 'curvature', 'spotsPerSecond']) {
        expect(Number.isFinite(line[key]), key).toBe(true);
      }
    }
    expect(lines[2]).toMatchObject({ status: 'completed', epochs: 2, steps: 12, backend: 'wasm', out });
    expect(lines[2].spotsPerSecond).toBeGreaterThan(0);
    expect(existsSync(join(out, 'latest.json'))).toBe(true);
  });

  it('says what is wrong in one line and exits 1', () => {
    const cases: [string[], RegExp][] = [
      [['--epochs', '2', '--out', join(tmp, 'x')], /give at least one SECTION/],
      [[A1, '--epochs', '2'], /--out DIR is required/],
      [[A1, '--epochs', '2', '--out', join(tmp, 'x'), '--mode', 'hyper'], /--mode must be one of clip, meru, delst/],
      [[A1, '--epochs', 'two', '--out', join(tmp, 'x')], /--epochs must be a whole number/],
      [[A1, '--epochs', '2', '--out', join(tmp, 'x'), '--frobnicate'], /unknown option --frobnicate/],
      [[join(tmp, 'missing'), '--epochs', '2', '--out', join(tmp, 'x')], /no such file or folder/],
      [[A1, '--epochs', '2', '--out', join(tmp, 'model')], /already holds a model: pass --resume/],
      [[A1, '--resume', '--out', join(tmp, 'model'), '--lr', '0.5'], /the run was trained with lr 0.0001, not 0.5/],
    ];
    for (const [args, message] of cases) {
      const run = delst('train', ...args);
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr).toMatch(message);
      expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
      expect(run.stderr.startsWith('delst train: ')).toBe(true);
    }
    expect(delst('train', '--help')).toMatchObject({ code: 0, stdout: expect.stringContaining('--freeze backbone') });
  });

  it('resumes after SIGKILL from the last complete epoch', async () => {
    const out = join(tmp, 'killed');
    const args = [A1, '--epochs', '5', '--json', '--out', out, '--model-config', TINY];
    const training = startTraining(args);
    await training.firstEpoch;
    training.child.kill('SIGKILL');
    const killed = await training.exited;
    expect(killed.signal).toBe('SIGKILL');
    const saved = JSON.parse(await readFile(join(out, 'latest.json'), 'utf8'));
    expect(saved.epoch).toBeGreaterThanOrEqual(1);
    expect(saved.epoch).toBeLessThan(5);

    const resumed = delst('train', A1, '--resume', '--json', '--out', out);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    const lines = jsonLines(resumed.stdout);
    const epochs = lines.slice(0, -1).map((l) => l.epoch);
    expect(epochs).toEqual(Array.from({ length: 5 - saved.epoch }, (_, i) => saved.epoch + 1 + i));
    expect(lines.at(-1)).toMatchObject({
      status: 'completed',
      epochs: 5,
      steps: 30,
      resumedFrom: { epoch: saved.epoch, step: saved.epoch * 6 },
    });
  });

  it('saves a checkpoint on Ctrl-C and exits 130', async () => {
    const out = join(tmp, 'interrupted');
    const training = startTraining([A1, '--epochs', '8', '--json', '--out', out, '--model-config', TINY]);
    await training.firstEpoch;
    training.child.kill('SIGINT');
    const stopped = await training.exited;
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toMatch(/interrupted, finishing the current step and saving a checkpoint/);
    expect(stopped.stderr).toMatch(/stopped at epoch \d, step \d+; saved in .* \(continue with --resume\)/);
    const summary = jsonLines(stopped.stdout).at(-1);
    expect(summary.status).toBe('aborted');
    const saved = JSON.parse(await readFile(join(out, 'latest.json'), 'utf8'));
    expect(saved.step).toBe(summary.steps);
  });
});

describe('delst embed', () => {
  it('writes the embeddings, tangent vectors and features as .npy with the spot ids', async () => {
    const file = join(tmp, 'a1.npy');
    const run = delst('embed', join(tmp, 'model'), A1, '--out', file, '--json');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ section: 'A1', modality: 'image', spots: 346, dim: 16 });

    const bytes = await readFile(file);
    expect([...bytes.subarray(0, 8)]).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const headerLength = bytes.readUInt16LE(8);
    expect((10 + headerLength) % 64).toBe(0);
    expect(bytes.subarray(10, 10 + headerLength).toString('latin1')).toMatch(
      /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(346, 16\), \} *\n$/,
    );
    expect(bytes.length).toBe(10 + headerLength + 346 * 16 * 4);

    const space = decodeNpy(bytes);
    const tangent = decodeNpy(await readFile(join(tmp, 'a1.tangent.npy')));
    const features = decodeNpy(await readFile(join(tmp, 'a1.features.npy')));
    expect(tangent.shape).toEqual([346, 16]);
    expect(features.shape).toEqual([346, 8]);
    expect(space.data.every(Number.isFinite) && tangent.data.every(Number.isFinite)).toBe(true);
    // expMap0 keeps the direction of the tangent vector: the space components are parallel to it.
    const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i], 0);
    const z = space.data.subarray(0, 16);
    const v = tangent.data.subarray(0, 16);
    expect(dot(z, v) / Math.sqrt(dot(z, z) * dot(v, v))).toBeCloseTo(1, 5);

    const ids = (await readFile(join(tmp, 'a1.spots.csv'), 'utf8')).trim().split('\n');
    expect(ids).toHaveLength(347);
    expect(ids[0]).toBe('spot_id');
    expect(ids[1]).toMatch(/^\d+x\d+$/);

    const gene = delst('embed', join(tmp, 'model'), A1, '--out', join(tmp, 'g.npy'), '--modality', 'gene', '--json');
    expect(gene.code).toBe(0);
    expect(decodeNpy(await readFile(join(tmp, 'g.features.npy'))).shape).toEqual([346, 16]);

    const bad = delst('embed', join(tmp, 'model'), A1);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe('delst embed: --out FILE.npy is required');
  });
});

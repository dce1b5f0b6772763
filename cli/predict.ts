// `delst predict MODEL INPUT --out FILE.csv --train SECTION... [--label-column COL] [options]`: per in-tissue spot
// of INPUT (a section with spots), its id, position, predicted class and probability (a linear probe trained on
// the --train sections' label column) and predicted expression of the top genes (kNN from the --train sections'
// spots, as `delst eval` does). The CSV is written atomically. Bare H&E images (no spots) are not handled yet.

import path from 'node:path';
import type { BackendChoice } from '../core/engine/backend.js';
import { writeFileAtomic } from '../core/engine/npy.js';
import { hasLabelColumn, rowLabels, sharedGeneSource, type EmbeddedSection } from '../core/eval/evaluate.js';
import { euclideanDistance, knnPredict, lorentzDistance, selectGenes } from '../core/eval/gene-prediction.js';
import { linearProbe } from '../core/eval/logistic.js';
import type { Matrix } from '../core/eval/matrix.js';
import { openSections } from '../core/readers/open.js';
import { choiceOption, numberOption, parseArgs, UsageError } from './args.js';
import { embedWithModel, modelPath, readImagedSections, takeLists } from './eval.js';

export const PREDICT_USAGE = `Usage: delst predict MODEL INPUT --out FILE.csv --train SECTION... [options]

Writes one CSV row per in-tissue spot of INPUT (a section with spots and its H&E image): spot_id, x, y
(full-resolution pixels), then with --label-column the predicted class and its probability (a linear probe on the
frozen backbone features, trained on the --train sections), then the predicted expression of the most variable
genes of the --train spots and of --genes, as ln(1 + count / spot total * T) with T the median spot total of the
--train spots (nearest --train spots in the image embedding space, as delst eval). MODEL: a model folder or 'base'.
Bare H&E images without spots are not supported yet.

Options:
  --out FILE.csv         the CSV (written atomically)
  --train SECTION...     reference sections (expression, and labels with --label-column)
  --label-column COL     train a probe on this label column of the --train sections
  --keep-undetermined    keep spots labelled 'undetermined' when training the probe
  --top-genes N          most variable genes of the --train spots (default 50)
  --genes G1,G2          genes to predict besides those
  --k N                  neighbours (default 50)
  --seed S               seed of the probe's inner split (default 0)
  --backend B            auto, tensorflow or wasm (default auto)
  --json                 print what was written as JSON`;

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function stack(parts: readonly EmbeddedSection[], pick: (es: EmbeddedSection) => Matrix): Matrix {
  const cols = pick(parts[0]).cols;
  const data = new Float64Array(parts.reduce((n, p) => n + pick(p).data.length, 0));
  let offset = 0;
  for (const p of parts) {
    data.set(pick(p).data, offset);
    offset += pick(p).data.length;
  }
  return { rows: data.length / cols, cols, data };
}

export async function runPredict(args: readonly string[]): Promise<number> {
  const { rest, lists } = takeLists(args, ['train']);
  const parsed = parseArgs(
    rest,
    ['out', 'label-column', 'top-genes', 'genes', 'k', 'seed', 'backend'],
    ['json', 'keep-undetermined'],
  );
  if (parsed.positional.length !== 2)
    throw new UsageError('give a MODEL (a model folder, or base) and one INPUT section');
  const modelDir = modelPath(parsed.positional[0]);
  const inputPath = parsed.positional[1];
  const out = parsed.options.get('out');
  if (!out) throw new UsageError('--out FILE.csv is required');
  const trainPaths = lists.get('train');
  if (!trainPaths) throw new UsageError('--train SECTION... is required (the reference spots of the predictions)');
  const column = parsed.options.get('label-column') ?? null;
  const top = numberOption(parsed, 'top-genes', { integer: true, min: 0 }) ?? 50;
  const named = (parsed.options.get('genes') ?? '')
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
  const k = numberOption(parsed, 'k', { integer: true, min: 1 }) ?? 50;
  const seed = numberOption(parsed, 'seed', { integer: true, min: 0 }) ?? 0;
  const backend = choiceOption<BackendChoice>(parsed, 'backend', ['auto', 'tensorflow', 'wasm']) ?? 'auto';
  const json = parsed.options.has('json');

  const { sections: found } = await openSections(inputPath);
  if (found.length !== 1) throw new UsageError(`${inputPath} holds ${found.length} sections: give one section`);
  const input = found[0];
  if (input.format === 'image' || input.spots.ids.length === 0) {
    throw new UsageError(
      `${input.name} is a bare image without spots: predicting on tiled H&E images is not implemented yet`,
    );
  }
  if (!input.image) throw new UsageError(`${input.name} has no H&E image`);
  const train = await readImagedSections(trainPaths);
  if (column !== null) {
    const lacking = train.filter((s) => !hasLabelColumn(s, column)).map((s) => s.name);
    if (lacking.length > 0) {
      throw new UsageError(
        `label column '${column}' missing in section${lacking.length > 1 ? 's' : ''} ${lacking.join(', ')}`,
      );
    }
  }

  const { embedded, space, model } = await embedWithModel(modelDir, [...train, input], backend, json);
  const trainE = embedded.slice(0, train.length);
  const target = embedded[train.length];

  const header = ['spot_id', 'x', 'y'];
  const columns: string[][] = [];
  let classes: string[] = [];
  if (column !== null) {
    const probe = linearProbe({
      trainX: stack(trainE, (es) => es.features),
      trainY: trainE.flatMap((es) => rowLabels(es, column)),
      testX: target.features,
      testY: rowLabels(target, column),
      dropLabels: parsed.options.has('keep-undetermined') ? [] : ['undetermined'],
      seed,
    });
    classes = probe.trainingClasses;
    const K = classes.length;
    header.push('predicted_class', 'probability');
    columns.push(probe.predictions);
    columns.push(
      probe.predictions.map((_, i) => {
        let best = 0;
        for (let c = 0; c < K; c++) best = Math.max(best, probe.probabilities.data[i * K + c]);
        return best.toFixed(4);
      }),
    );
  }
  const source = sharedGeneSource(trainE, []);
  const selection = selectGenes(source, { top, named });
  if (selection.indices.length > 0) {
    const G = selection.indices.length;
    const values = selection.indices.map((g) => source.train(g));
    const n = values[0].length;
    const data = new Float64Array(n * G);
    values.forEach((v, g) => {
      for (let i = 0; i < n; i++) data[i * G + g] = v[i];
    });
    const refY: Matrix = { rows: n, cols: G, data };
    const predicted = knnPredict(
      stack(trainE, (es) => es.embeddings),
      refY,
      target.embeddings,
      {
        k,
        distance: space.curvature === null ? euclideanDistance : lorentzDistance(space.curvature),
      },
    );
    selection.indices.forEach((gene, g) => {
      header.push(source.genes[gene]);
      columns.push(Array.from({ length: predicted.rows }, (_, i) => predicted.data[i * G + g].toFixed(4)));
    });
  }
  const { x, y, ids } = target.section.spots;
  const rows = Array.from(target.spots, (s, r) =>
    [csvField(ids[s]), x[s].toFixed(2), y[s].toFixed(2), ...columns.map((c) => csvField(c[r]))].join(','),
  );
  const file = path.resolve(out);
  await writeFileAtomic(file, [header.map(csvField).join(','), ...rows].join('\n') + '\n');
  const summary = {
    command: 'predict',
    model: model.path,
    input: target.name,
    spots: rows.length,
    labelColumn: column,
    classes,
    genes: selection.indices.map((g) => source.genes[g]),
    unknownGenes: selection.unknown,
    targetSum: source.targetSum,
    knnSpace: space.distanceName,
    out: file,
  };
  console.log(
    json
      ? JSON.stringify(summary)
      : `${rows.length} spots of ${target.name}: ${column !== null ? `class (${classes.length} classes), ` : ''}` +
          `${summary.genes.length} genes; ${file}`,
  );
  if (selection.unknown.length > 0 && !json)
    console.error(`delst predict: genes not found: ${selection.unknown.join(', ')}`);
  return 0;
}

// `delst predict MODEL INPUT --out FILE.csv --train SECTION... [--label-column COL] [options]`: per in-tissue spot
// of INPUT (a section with spots), its id, position, predicted class and probability (a linear probe trained on
// the --train sections' label column) and predicted expression of the top genes (kNN from the --train sections'
// spots, as `delst eval` does). A bare H&E image is tiled first (core/slides/tiling.ts: tissue detection, then
// spot-sized tiles at the --train sections' spot diameter) and the tiles are predicted as spots. The CSV is written
// atomically.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BACKEND_CHOICES, type BackendChoice } from '../core/engine/backend.js';
import { writeFileAtomic } from '../core/engine/npy.js';
import { hasLabelColumn, rowLabels, sharedGeneSource, stack } from '../core/eval/evaluate.js';
import { euclideanDistance, knnPredict, lorentzDistance, selectGenes } from '../core/eval/gene-prediction.js';
import { linearProbe } from '../core/eval/logistic.js';
import type { Matrix } from '../core/eval/matrix.js';
import { GeometryError, regionGeometry, type RegionGeometry } from '../core/project/geometry.js';
import { openSections } from '../core/readers/open.js';
import type { Section } from '../core/section/section.js';
import { tileImage } from '../core/slides/tiling.js';
import { choiceOption, numberOption, parseArgs, UsageError } from './args.js';
import { embedWithModel, modelPath, readImagedSections, takeLists } from './eval.js';
import { progressBar } from './progress.js';

export const PREDICT_USAGE = `Usage: delst predict MODEL INPUT --out FILE.csv --train SECTION... [options]

Writes one CSV row per in-tissue spot of INPUT (a section with spots and its H&E image): spot_id, x, y
(full-resolution pixels), then with --label-column the predicted class and its probability (a linear probe on the
frozen backbone features, trained on the --train sections), then the predicted expression of the most variable
genes of the --train spots and of --genes, as ln(1 + count / spot total * T) with T the median spot total of the
--train spots (nearest --train spots in the image embedding space, as delst eval). MODEL: a model folder or 'base'.

INPUT may be a bare H&E image (PNG, JPEG, TIFF/SVS): its tissue is detected (glass and background skipped) and
tiled with spot-sized tiles on a hexagonal grid, tiles of the --train sections' spot diameter (the scale the
references were embedded at), which are then predicted as spots: rows tile_id (tile_ROW_COL), x, y (image pixels).

Options:
  --out FILE.csv         the CSV (written atomically)
  --train SECTION...     reference sections (expression, and labels with --label-column)
  --label-column COL     train a probe on this label column of the --train sections
  --keep-undetermined    keep spots labelled 'undetermined' when training the probe
  --top-genes N          most variable genes of the --train spots (default 50)
  --genes G1,G2          genes to predict besides those
  --k N                  neighbours (default 50)
  --seed S               seed of the probe's inner split (default 0)
  --backend B            auto, tensorflow, webgpu or wasm (default auto: a CUDA GPU, else a GPU through WebGPU,
                         else the CPU)
  --json                 print what was written as JSON
Bare images:
  --microns-per-pixel X  the image's pixel size (required unless the TIFF says; 0.25 at 40x, 0.5 at 20x)
  --spacing UM           centre-to-centre distance of tiles (default: the spot diameter, so tiles touch)
  --region FILE.geojson  only tiles whose centres fall in its polygons (image pixels; a GeoJSON geometry, Feature
                         or FeatureCollection of Polygons/MultiPolygons, e.g. exported from QuPath)`;

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export async function runPredict(args: readonly string[]): Promise<number> {
  const { rest, lists } = takeLists(args, ['train']);
  const parsed = parseArgs(
    rest,
    ['out', 'label-column', 'top-genes', 'genes', 'k', 'seed', 'backend', 'microns-per-pixel', 'spacing', 'region'],
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
  const backend = choiceOption<BackendChoice>(parsed, 'backend', BACKEND_CHOICES) ?? 'auto';
  const json = parsed.options.has('json');

  const micronsPerPixel = numberOption(parsed, 'microns-per-pixel', { positive: true });
  const spacing = numberOption(parsed, 'spacing', { positive: true });
  const regionFile = parsed.options.get('region');

  const { sections: found, failures } = await openSections(inputPath);
  if (found.length === 0 && failures.length > 0) throw failures[0];
  if (found.length !== 1) throw new UsageError(`${inputPath} holds ${found.length} sections: give one section`);
  const bare = found[0].format === 'image';
  if (!bare && (micronsPerPixel !== undefined || spacing !== undefined || regionFile !== undefined)) {
    throw new UsageError(
      `${found[0].name} has spots of its own: --microns-per-pixel, --spacing and --region are for bare images`,
    );
  }
  if (!found[0].image) throw new UsageError(`${found[0].name} has no H&E image`);
  // What a bare image needs is checked before the (slower) reading of the references.
  const imageMpp = bare ? pixelSize(found[0], micronsPerPixel) : 0;
  const region = regionFile === undefined ? null : await readRegion(regionFile);
  const train = await readImagedSections(trainPaths);
  const input = bare
    ? await tiled(found[0], train, { micronsPerPixel: imageMpp, spacing, region, quiet: json })
    : found[0];
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

  const header = [bare ? 'tile_id' : 'spot_id', 'x', 'y'];
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
  // Tiles are placed in image pixels; the section keeps full-resolution pixels (the same for a bare image).
  const scale = bare ? target.section.image!.scale : 1;
  const rows = Array.from(target.spots, (s, r) =>
    [
      csvField(ids[s]),
      (x[s] * scale).toFixed(2),
      (y[s] * scale).toFixed(2),
      ...columns.map((c) => csvField(c[r])),
    ].join(','),
  );
  const file = path.resolve(out);
  await writeFileAtomic(file, [header.map(csvField).join(','), ...rows].join('\n') + '\n');
  const summary = {
    command: 'predict',
    model: model.path,
    input: target.name,
    spots: rows.length,
    tiled: bare ? { diameterMicrons: input.spotDiameterMicrons, spacingMicrons: input.spotSpacingMicrons } : null,
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
      : `${rows.length} ${bare ? 'tiles' : 'spots'} of ${target.name}: ${column !== null ? `class (${classes.length} classes), ` : ''}` +
          `${summary.genes.length} genes; ${file}`,
  );
  if (selection.unknown.length > 0 && !json)
    console.error(`delst predict: genes not found: ${selection.unknown.join(', ')}`);
  return 0;
}

/** Microns per image pixel of a bare image: as given, else as its file says. */
function pixelSize(image: Section, given: number | undefined): number {
  const scale = image.image!.scale;
  const micronsPerPixel = given ?? (image.micronsPerPixel ? image.micronsPerPixel / scale : undefined);
  if (micronsPerPixel === undefined) {
    throw new UsageError(
      `the pixel size of ${image.source} is unknown: give --microns-per-pixel X (0.25 at 40x, 0.5 at 20x)`,
    );
  }
  return micronsPerPixel;
}

/** The bare image with tiles as its spots, at the --train sections' spot diameter. */
async function tiled(
  image: Section,
  train: readonly Section[],
  options: { micronsPerPixel: number; spacing?: number; region: RegionGeometry | null; quiet: boolean },
): Promise<Section> {
  const { micronsPerPixel } = options;
  const diameters = [...new Set(train.map((s) => s.spotDiameterMicrons))];
  if (diameters.length > 1) {
    throw new UsageError(
      `the --train sections have spots of ${diameters.join(' and ')} um: tiles need one size, give sections of one platform`,
    );
  }
  const bar = options.quiet ? null : progressBar('tiling');
  bar?.update(0, 1, 'detecting tissue');
  const result = await tileImage(image, {
    micronsPerPixel,
    diameterMicrons: diameters[0],
    spacingMicrons: options.spacing,
    region: options.region,
  }).finally(() => bar?.finish());
  const n = result.grid.ids.length;
  if (n === 0) {
    throw new UsageError(`no tissue found in ${image.source}${options.region ? ' inside the --region' : ''}`);
  }
  if (!options.quiet) {
    console.error(
      `delst predict: ${n} tiles of ${result.grid.diameterMicrons} um, ${result.grid.spacingMicrons} um apart, ` +
        `over ${(result.mask.fraction * 100).toFixed(1)}% tissue of ${image.name}`,
    );
  }
  return result.section;
}

/** The polygons of a GeoJSON file (geometry, Feature or FeatureCollection), in image pixels. */
async function readRegion(file: string): Promise<RegionGeometry> {
  const fail = (problem: string): never => {
    throw new UsageError(`${file}: ${problem}`);
  };
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) =>
    fail(error.code === 'ENOENT' ? 'no such file' : `cannot read it (${error.code ?? error.message})`),
  );
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail('not valid JSON');
  }
  const geometries: unknown[] = [];
  const collect = (node: unknown): void => {
    const item = node as { type?: unknown; geometry?: unknown; features?: unknown };
    if (item?.type === 'FeatureCollection' && Array.isArray(item.features)) item.features.forEach(collect);
    else if (item?.type === 'Feature') collect(item.geometry);
    else if (item?.type === 'Polygon' || item?.type === 'MultiPolygon') geometries.push(node);
  };
  collect(value);
  if (geometries.length === 0) fail('no Polygon or MultiPolygon in it');
  try {
    const polygons = geometries
      .map(regionGeometry)
      .flatMap((g) => (g.type === 'Polygon' ? [g.coordinates] : g.coordinates));
    return { type: 'MultiPolygon', coordinates: polygons };
  } catch (error) {
    if (error instanceof GeometryError) return fail(error.message);
    throw error;
  }
}

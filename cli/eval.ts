// `delst eval MODEL --train SECTION... --test SECTION... [--label-column COL] [options]` and
// `delst eval MODEL --cv sections --train SECTION... [options]`: a linear probe on the frozen image backbone
// features and gene expression from the image alone (core/eval/evaluate.ts says how). Human output is a compact
// table; --json prints one object; --report writes a self-contained HTML report atomically.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { BACKEND_CHOICES, initBackend, type BackendChoice } from '../core/engine/backend.js';
import { loadModel } from '../core/engine/checkpoint.js';
import type { GenePanel } from '../core/engine/gene-panel.js';
import type { DelstModel } from '../core/engine/models/delst-model.js';
import {
  crossValidateSections,
  embedSections,
  evaluateSplit,
  hasLabelColumn,
  splitToJson,
  type EmbeddedSection,
  type EmbeddingSpace,
  type EvalSettings,
  type SplitResult,
} from '../core/eval/evaluate.js';
import { renderReport, writeReport, type ReportInput, type SummaryRow } from '../core/eval/report.js';
import { ANNOTATION_COLUMN } from '../core/api/api.js';
import { annotatedSection, Annotations } from '../core/project/annotations.js';
import { openSections } from '../core/readers/open.js';
import type { Section } from '../core/section/section.js';
import { choiceOption, numberOption, parseArgs, UsageError, type ParsedArgs } from './args.js';
import { progressBar } from './progress.js';
import { initPath } from './train.js';

export const EVAL_USAGE = `Usage: delst eval MODEL --train SECTION... --test SECTION... [--label-column COL] [options]
       delst eval MODEL --cv sections --train SECTION... [--label-column COL] [options]

Evaluates a model's image encoder (MODEL: a model folder, or 'base' for the bundled base model):
  * a linear probe (multinomial logistic regression, L2 strength chosen on an inner split of the training spots)
    on the frozen backbone features, predicting the label column; spots labelled 'undetermined' are left out;
  * gene expression from the image alone on the test spots: per-gene Pearson r between predicted and measured
    log-normalised expression, for the most variable genes (chosen on the training spots) and the named ones, with
    nearest reference spots (kNN on the hyperboloid image embeddings, Lorentz distance at the model's curvature;
    clip models: normalised projections, Euclidean) and ridge regression from the backbone features.
Sections are joined on gene symbols; expression is ln(1 + count / spot total * T) with one T for all sections,
the median spot total over the training spots.

Options:
  --train SECTION...     training (reference) sections; with --cv, all the sections
  --test SECTION...      test sections (not with --cv)
  --cv sections          leave one section out: each section is the test fold once (the probe only on sections
                         with the label column; at least 2 needed); mean ± std over folds
  --label-column COL     label column of the probe (without it: genes only)
  --project DIR          add the annotations drawn in the app's project DIR as the label column 'annotations'
  --keep-undetermined    keep spots labelled 'undetermined'
  --genes G1,G2          genes to evaluate besides the most variable ones
  --top-genes N          most variable genes (default 50; 0: named genes only)
  --k N                  neighbours of the kNN predictor (default 50)
  --seed S               seed of the inner splits (default 0)
  --backend B            auto, tensorflow, webgpu or wasm (default auto: a CUDA GPU, else a GPU through WebGPU,
                         else the CPU)
  --report FILE.html     also write an HTML report (opens offline)
  --json                 print one JSON object`;

/** Options taking a list of sections: every argument after them up to the next option. */
export function takeLists(
  args: readonly string[],
  names: readonly string[],
): { rest: string[]; lists: Map<string, string[]> } {
  const rest: string[] = [];
  const lists = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith('--') ? args[i].slice(2) : null;
    if (name === null || !names.includes(name)) {
      rest.push(args[i]);
      continue;
    }
    if (lists.has(name)) throw new UsageError(`--${name} is given twice`);
    const values: string[] = [];
    while (i + 1 < args.length && !args[i + 1].startsWith('--')) values.push(args[++i]);
    if (values.length === 0) throw new UsageError(`--${name} needs at least one SECTION`);
    lists.set(name, values);
  }
  return { rest, lists };
}

/** MODEL as given, or the bundled base model for 'base'. */
export function modelPath(value: string): string {
  const resolved = initPath(value)!;
  if (!existsSync(resolved)) throw new UsageError(`${value}: no such model folder`);
  return resolved;
}

/** Reads every section at each path, each with its H&E image and spots. */
export async function readImagedSections(paths: readonly string[]): Promise<Section[]> {
  const sections: Section[] = [];
  for (const p of paths) {
    const { sections: found, failures } = await openSections(p);
    if (failures.length > 0) throw failures[0];
    for (const section of found) {
      if (section.format === 'image' || section.spots.ids.length === 0) {
        throw new UsageError(`${section.name} is a bare image without spots: evaluation needs sections with spots`);
      }
      if (!section.image) throw new UsageError(`${section.name} has no H&E image`);
      sections.push(section);
    }
  }
  return sections;
}

/**
 * With `--project DIR`, each section gains the label column `annotations` from that project's database (what the
 * pathologist drew in the app), so `--label-column annotations` evaluates against it.
 */
function withProjectAnnotations(sections: Section[], projectDir: string | undefined): Section[] {
  if (projectDir === undefined || sections.length === 0) return sections;
  const project = Annotations.openProject(projectDir, { create: false });
  try {
    return sections.map((section) => annotatedSection(section, project, ANNOTATION_COLUMN));
  } finally {
    project.close();
  }
}

/** Opens the model and embeds the sections; the model is disposed before returning. */
export async function embedWithModel(
  modelDir: string,
  sections: readonly Section[],
  backend: BackendChoice,
  quiet: boolean,
): Promise<{ embedded: EmbeddedSection[]; space: EmbeddingSpace; model: ModelInfo; panel: GenePanel }> {
  const info = await initBackend(backend);
  if (!quiet) console.error(`delst: embedding on ${info.device}`);
  const { model, checkpoint } = await loadModel(modelDir);
  try {
    const panel = checkpoint.manifest.genePanel;
    if (!panel) throw new UsageError(`${modelDir}: the model has no gene panel`);
    const bar = quiet ? null : progressBar('embedding');
    const { embedded, space } = await embedSections(model, panel, sections, {
      onProgress: (done, total, name) => bar?.update(done, total, name),
    }).finally(() => bar?.finish());
    return { embedded, space, model: await modelInfo(model, checkpoint.path), panel };
  } finally {
    model.dispose();
  }
}

export interface ModelInfo {
  readonly path: string;
  readonly mode: string;
  readonly curvature: number | null;
  readonly featureDim: number;
  readonly embedDim: number;
}

async function modelInfo(model: DelstModel, dir: string): Promise<ModelInfo> {
  return {
    path: path.resolve(dir),
    mode: model.config.mode,
    curvature: model.config.mode === 'clip' ? null : (await model.scalars()).curvature,
    featureDim: model.imageEncoder.outputWidth,
    embedDim: model.config.embedDim,
  };
}

function settingsFromArgs(parsed: ParsedArgs): EvalSettings {
  const genes = parsed.options.get('genes');
  return {
    labelColumn: parsed.options.get('label-column') ?? null,
    keepUndetermined: parsed.options.has('keep-undetermined'),
    topGenes: numberOption(parsed, 'top-genes', { integer: true, min: 0 }) ?? 50,
    genes: genes
      ? genes
          .split(',')
          .map((g) => g.trim())
          .filter(Boolean)
      : [],
    k: numberOption(parsed, 'k', { integer: true, min: 1 }) ?? 50,
    seed: numberOption(parsed, 'seed', { integer: true, min: 0 }) ?? 0,
  };
}

const f3 = (v: number | null | undefined) => (v === null || v === undefined || Number.isNaN(v) ? '-' : v.toFixed(3));
const pm = (s: { mean: number | null; std: number | null }) => `${f3(s.mean)} ± ${f3(s.std)}`;

function splitLines(r: SplitResult): string[] {
  const lines: string[] = [];
  if (r.probe) {
    const m = r.probe.metrics;
    lines.push(
      `  probe    acc ${f3(m.accuracy)}  bal-acc ${f3(m.balancedAccuracy)}  macro-F1 ${f3(m.macroF1)}  ` +
        `AUC ${f3(m.macroAuc)}  (${r.probe.nTrain} train, ${r.probe.nTest} test spots, C ${r.probe.chosenC.toPrecision(3)})`,
    );
    if (r.probe.classesAbsentFromTraining.length > 0) {
      lines.push(
        `  absent from training: ${r.probe.classesAbsentFromTraining.map((c) => `${c.name} (${c.count})`).join(', ')}`,
      );
    }
  }
  if (r.genes) {
    const s = r.genes.summary;
    lines.push(
      `  genes    kNN mean r ${f3(s.knn.mean)} (median ${f3(s.knn.median)})  ridge mean r ${f3(s.ridge.mean)} ` +
        `(median ${f3(s.ridge.median)})  over ${s.knn.n + s.knn.nulls} genes, ${r.genes.nTest} test spots`,
    );
    const best = [...r.genes.genes]
      .filter((g) => g.knn !== null || g.ridge !== null)
      .sort((a, b) => Math.max(b.knn ?? -1, b.ridge ?? -1) - Math.max(a.knn ?? -1, a.ridge ?? -1))
      .slice(0, 5);
    lines.push(`  best     ${best.map((g) => `${g.name} ${f3(g.knn)}/${f3(g.ridge)}`).join('  ')}  (kNN/ridge r)`);
    if (r.genes.unknownGenes.length) lines.push(`  genes not found: ${r.genes.unknownGenes.join(', ')}`);
  }
  return lines;
}

function confusionLines(r: SplitResult): string[] {
  if (!r.probe) return [];
  const { classes, counts } = r.probe.confusion;
  const w = Math.max(5, ...classes.map((c) => c.length));
  const abbreviations = classes.map((_, i) => `c${i + 1}`);
  return [
    `  confusion (rows true, columns predicted)`,
    `    ${''.padEnd(w)} ${abbreviations.map((a) => a.padStart(5)).join('')}`,
    ...classes.map(
      (c, t) =>
        `    ${`${abbreviations[t]} ${c}`.padEnd(w + 3)}${counts[t].map((n) => String(n).padStart(5)).join('')}`,
    ),
  ];
}

function testSpots(test: readonly EmbeddedSection[]): { x: Float64Array; y: Float64Array } {
  const x = Float64Array.from(test.flatMap((es) => Array.from(es.spots, (s) => es.section.spots.x[s])));
  const y = Float64Array.from(test.flatMap((es) => Array.from(es.spots, (s) => es.section.spots.y[s])));
  return { x, y };
}

export async function runEval(args: readonly string[]): Promise<number> {
  const { rest, lists } = takeLists(args, ['train', 'test']);
  const parsed = parseArgs(
    rest,
    ['cv', 'label-column', 'genes', 'top-genes', 'k', 'seed', 'backend', 'report', 'project'],
    ['json', 'keep-undetermined'],
  );
  if (parsed.positional.length !== 1) throw new UsageError('give one MODEL (a model folder, or base)');
  const modelDir = modelPath(parsed.positional[0]);
  const cv = choiceOption(parsed, 'cv', ['sections'] as const);
  const settings = settingsFromArgs(parsed);
  const backend = choiceOption<BackendChoice>(parsed, 'backend', BACKEND_CHOICES) ?? 'auto';
  const json = parsed.options.has('json');
  const reportFile = parsed.options.get('report');
  const trainPaths = lists.get('train');
  const testPaths = lists.get('test');
  if (!trainPaths) throw new UsageError('--train SECTION... is required');
  if (cv && testPaths) throw new UsageError('with --cv sections give every section with --train, not --test');
  if (!cv && !testPaths) throw new UsageError('--test SECTION... is required (or use --cv sections)');
  if (settings.topGenes === 0 && settings.genes?.length === 0 && settings.labelColumn === null) {
    throw new UsageError('nothing to evaluate: give --label-column, or genes (--top-genes > 0 or --genes)');
  }
  const skipGenes = settings.topGenes === 0 && settings.genes?.length === 0;
  const column = settings.labelColumn;

  const project = parsed.options.get('project');
  const train = withProjectAnnotations(await readImagedSections(trainPaths), project);
  const test = withProjectAnnotations(testPaths ? await readImagedSections(testPaths) : [], project);
  if (column !== null) {
    if (cv) {
      const labelled = train.filter((s) => hasLabelColumn(s, column));
      if (labelled.length < 2) {
        const lacking = train.filter((s) => !hasLabelColumn(s, column)).map((s) => s.name);
        throw new UsageError(
          `--cv sections needs at least 2 sections with label column '${column}'; ` +
            `${labelled.length ? `only ${labelled.map((s) => s.name).join(', ')} has it` : 'none has it'}` +
            (lacking.length ? ` (${lacking.join(', ')} lack${lacking.length === 1 ? 's' : ''} it)` : ''),
        );
      }
    } else {
      const lacking = [...new Set([...train, ...test].filter((s) => !hasLabelColumn(s, column)).map((s) => s.name))];
      if (lacking.length > 0) {
        throw new UsageError(
          `label column '${column}' missing in section${lacking.length > 1 ? 's' : ''} ${lacking.join(', ')}`,
        );
      }
    }
  }
  if (cv && train.length < 2) throw new UsageError('--cv sections needs at least 2 sections');

  // Each distinct section is embedded once, even when it is both a training and a test section.
  const key = (s: Section) => `${s.source}\u0000${s.name}`;
  const distinct = [...new Map([...train, ...test].map((s) => [key(s), s] as const)).values()];
  const { embedded, space, model } = await embedWithModel(modelDir, distinct, backend, json);
  const byKey = new Map(distinct.map((s, i) => [key(s), embedded[i]] as const));
  const trainE = train.map((s) => byKey.get(key(s))!);
  const testE = test.map((s) => byKey.get(key(s))!);
  const evalSettings = { ...settings, skipGenes };

  const sectionInfo = (es: EmbeddedSection) => ({
    name: es.name,
    source: es.source,
    spots: es.spots.length,
    labelled: column !== null && hasLabelColumn(es.section, column),
  });
  const settingsJson = {
    labelColumn: column,
    keepUndetermined: settings.keepUndetermined,
    topGenes: settings.topGenes,
    genes: settings.genes,
    k: settings.k,
    seed: settings.seed,
    knnSpace: space.distanceName,
    ridgeFeatures: 'backbone image features',
    probeFeatures: 'backbone image features',
    normalisation: 'ln(1 + count / spot total * T), T = median spot total over the training spots',
  };

  let out: object;
  let lines: string[];
  let report: ReportInput;
  const generated = new Date().toISOString();
  const modelRows: SummaryRow[] = [
    ['Model', model.path],
    ['Mode', model.mode],
    ['Curvature', model.curvature === null ? null : model.curvature.toPrecision(4)],
    ['kNN space', space.distanceName],
  ];
  if (cv) {
    const result = crossValidateSections(trainE, space, evalSettings);
    const s = result.summary;
    out = {
      command: 'eval',
      cv: 'sections',
      model,
      sections: trainE.map(sectionInfo),
      settings: settingsJson,
      summary: s,
      folds: result.folds.map(splitToJson),
    };
    lines = [
      `${model.mode} model ${model.path}, leave-one-section-out over ${trainE.map((e) => e.name).join(', ')}`,
      ...result.folds.flatMap((f) => [`fold: test ${f.test.join(', ')}`, ...splitLines(f)]),
      `mean ± std over folds`,
      ...(s.probeFolds
        ? [
            `  probe (${s.probeFolds} folds)  bal-acc ${pm(s.balancedAccuracy)}  macro-F1 ${pm(s.macroF1)}  AUC ${pm(s.macroAuc)}`,
          ]
        : []),
      ...(s.geneFolds
        ? [`  genes (${s.geneFolds} folds)  kNN mean r ${pm(s.knnMeanR)}  ridge mean r ${pm(s.ridgeMeanR)}`]
        : []),
    ];
    report = {
      title: `DELST evaluation: leave-one-section-out, ${model.mode}`,
      generated,
      data: [
        ['Sections', trainE.map((e) => e.name).join(', ')],
        ['Label column', column],
        ['Probe folds', s.probeFolds],
        ['Balanced accuracy (mean ± std)', pm(s.balancedAccuracy)],
        ['Macro-F1 (mean ± std)', pm(s.macroF1)],
        ['Macro AUC (mean ± std)', pm(s.macroAuc)],
        ['Gene folds', s.geneFolds],
        ['kNN mean r (mean ± std)', pm(s.knnMeanR)],
        ['Ridge mean r (mean ± std)', pm(s.ridgeMeanR)],
      ],
      model: modelRows,
      folds: result.folds.map((f) => ({
        title: `Fold: test ${f.test.join(', ')}`,
        probe: f.probe ?? undefined,
        genes: f.genes ?? undefined,
        spots: testSpots(trainE.filter((e) => f.test.includes(e.name))),
      })),
    };
  } else {
    const result = evaluateSplit(trainE, testE, space, evalSettings);
    out = {
      command: 'eval',
      model,
      sections: { train: trainE.map(sectionInfo), test: testE.map(sectionInfo) },
      settings: settingsJson,
      ...splitToJson(result),
    };
    lines = [
      `${model.mode} model ${model.path}; train ${trainE.map((e) => e.name).join(', ')}; test ${testE.map((e) => e.name).join(', ')}`,
      ...splitLines(result),
      ...confusionLines(result),
    ];
    report = {
      title: `DELST evaluation: ${model.mode}, test ${testE.map((e) => e.name).join(', ')}`,
      generated,
      data: [
        ['Training sections', trainE.map((e) => e.name).join(', ')],
        ['Test sections', testE.map((e) => e.name).join(', ')],
        ['Label column', column],
        ['Target sum T', result.genes ? result.genes.targetSum : null],
      ],
      model: modelRows,
      probe: result.probe ?? undefined,
      genes: result.genes ?? undefined,
      spots: testSpots(testE),
    };
  }
  if (reportFile) {
    await writeReport(path.resolve(reportFile), renderReport(report));
    if (!json) lines.push(`report: ${path.resolve(reportFile)}`);
  }
  console.log(json ? JSON.stringify(out) : lines.join('\n'));
  return 0;
}

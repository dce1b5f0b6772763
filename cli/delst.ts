// The `delst` command: everything the app does, headless. Errors print one clear line and exit non-zero.

import { ConfigError } from '../core/engine/config.js';
import { TrainingError } from '../core/engine/trainer.js';
import { DataError } from '../core/readers/errors.js';
import { demoPath } from '../core/resources.js';
import { UsageError } from './args.js';
import { EMBED_USAGE, runEmbed } from './embed.js';
import { EVAL_USAGE, runEval } from './eval.js';
import { formatReport, inspectPath } from './inspect.js';
import { PREDICT_USAGE, runPredict } from './predict.js';
import { runTrain, TRAIN_USAGE } from './train.js';

const USAGE = `Usage: delst <command> [options]

Commands:
  inspect [PATH] [--json]   Read a Space Ranger outs/ folder, an AnnData .h5ad or a legacy ST folder and
                            print what was found (default PATH: the bundled demo section)
  train SECTION... --mode M --epochs N --out DIR [options]
                            Train (or fine-tune with --init, or continue with --resume) a model
  embed MODEL SECTION --out FILE.npy
                            Write per-spot embeddings of a section as .npy files
  eval MODEL --train SECTION... --test SECTION... [--label-column COL]
                            Linear probe and gene expression from the image on test sections (or --cv sections)
  predict MODEL INPUT --out FILE.csv --train SECTION...
                            Predicted class and gene expression per spot of a section, as CSV
  help [COMMAND]            Show this help, or a command's options`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'inspect':
      return inspect(rest);
    case 'train':
      return withUsage('train', TRAIN_USAGE, rest, runTrain);
    case 'embed':
      return withUsage('embed', EMBED_USAGE, rest, runEmbed);
    case 'eval':
      return withUsage('eval', EVAL_USAGE, rest, runEval);
    case 'predict':
      return withUsage('predict', PREDICT_USAGE, rest, runPredict);
    case 'help': {
      const usages: Record<string, string> = {
        train: TRAIN_USAGE,
        embed: EMBED_USAGE,
        eval: EVAL_USAGE,
        predict: PREDICT_USAGE,
      };
      console.log(rest[0] !== undefined && Object.hasOwn(usages, rest[0]) ? usages[rest[0]] : USAGE);
      return 0;
    }
    case undefined:
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`delst: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

/** Runs a command; `--help` prints its usage, and bad input of any kind is one line naming the command, exit 1. */
async function withUsage(
  name: string,
  usage: string,
  args: string[],
  run: (args: string[]) => Promise<number>,
): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(usage);
    return 0;
  }
  try {
    return await run(args);
  } catch (error) {
    if (
      error instanceof UsageError ||
      error instanceof TrainingError ||
      error instanceof ConfigError ||
      error instanceof DataError
    ) {
      console.error(`delst ${name}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

async function inspect(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const unknown = args.filter((a) => a.startsWith('--') && a !== '--json');
  if (unknown.length > 0) {
    console.error(`delst inspect: unknown option ${unknown[0]}`);
    return 2;
  }
  const paths = args.filter((a) => !a.startsWith('--'));
  if (paths.length > 1) {
    console.error('delst inspect: give one path');
    return 2;
  }
  const report = await inspectPath(paths[0] ?? demoPath());
  console.log(json ? JSON.stringify(report, null, 2) : formatReport(report));
  // A folder where some sections could not be read still prints the others, but does not pass as clean.
  if ('errors' in report && report.errors.length > 0) {
    for (const error of report.errors) console.error(`delst: ${error}`);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    // Data problems are the user's to fix: one line naming the file. Anything else is our bug: keep the stack.
    if (error instanceof DataError) console.error(`delst: ${error.message}`);
    else console.error(error);
    process.exitCode = 1;
  },
);

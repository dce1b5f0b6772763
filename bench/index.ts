// `npm run bench -- NAME [options]`: benchmarks print one JSON object on stdout.

import { benchAblation } from './ablation.js';
import { benchKernels } from './kernels.js';
import { benchPyramid } from './pyramid.js';
import { benchSoak } from './soak.js';
import { benchTrain } from './train.js';
import { benchViewer } from './viewer.js';

const BENCHMARKS: Record<string, (args: string[]) => Promise<object>> = {
  ablation: benchAblation,
  kernels: benchKernels,
  pyramid: benchPyramid,
  soak: benchSoak,
  train: benchTrain,
  viewer: benchViewer,
};

const [name, ...args] = process.argv.slice(2);
const run = name ? BENCHMARKS[name] : undefined;
if (!run) {
  console.error(`usage: npm run bench -- <${Object.keys(BENCHMARKS).join('|')}> [options]`);
  process.exitCode = 2;
} else {
  console.log(JSON.stringify(await run(args), null, 2));
}

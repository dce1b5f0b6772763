// `npm start`: the desktop app in Electron when its binary is installed, else the same renderer in the browser
// mode (a local server on 127.0.0.1 with a per-run token).
//
//   node dist/launch.js [--port N] [--browser] [--no-demo] [--project DIR] [PATH...]

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { demoPath, packageRoot } from './core/resources.js';

export interface LaunchOptions {
  port: number;
  browser: boolean;
  demo: boolean;
  /** The project folder (annotations); null: defaultProjectDir(). */
  project: string | null;
  paths: string[];
}

const USAGE = 'usage: npm start -- [--port N] [--browser] [--no-demo] [--project DIR] [PATH...]';

export function parseArgs(argv: readonly string[]): LaunchOptions {
  const options: LaunchOptions = { port: 0, browser: false, demo: true, project: null, paths: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--browser') options.browser = true;
    else if (arg === '--no-demo') options.demo = false;
    else if (arg === '--port' || arg.startsWith('--port=')) {
      const value = arg === '--port' ? argv[++i] : arg.slice('--port='.length);
      const port = Number(value);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: not a port number: ${value}`);
      options.port = port;
    } else if (arg === '--project' || arg.startsWith('--project=')) {
      const value = arg === '--project' ? argv[++i] : arg.slice('--project='.length);
      if (!value) throw new Error(`--project: a folder is needed\n${USAGE}`);
      options.project = resolve(value);
    } else if (arg === '--help' || arg === '-h') throw new Error(USAGE);
    else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}\n${USAGE}`);
    else options.paths.push(arg);
  }
  return options;
}

/**
 * The installed Electron executable, or null. Reads what the `electron` package's installer wrote instead of
 * calling `require('electron')`, which would try to download the binary when it is missing.
 */
export function findElectronBinary(): string | null {
  let electronDir: string;
  try {
    electronDir = dirname(createRequire(import.meta.url).resolve('electron/package.json'));
  } catch {
    return null;
  }
  const pathFile = join(electronDir, 'path.txt');
  if (!existsSync(pathFile)) return null;
  const executable = readFileSync(pathFile, 'utf8').trim();
  const dist = process.env.ELECTRON_OVERRIDE_DIST_PATH || join(electronDir, 'dist');
  const binary = join(dist, executable);
  return existsSync(binary) ? binary : null;
}

/** Per-user slide cache: $DELST_CACHE_DIR, else $XDG_CACHE_HOME/delst-studio, else ~/.cache/delst-studio. */
export function defaultCacheDir(): string {
  if (process.env.DELST_CACHE_DIR) return resolve(process.env.DELST_CACHE_DIR);
  if (process.platform === 'win32' && process.env.LOCALAPPDATA) {
    return join(process.env.LOCALAPPDATA, 'delst-studio', 'cache');
  }
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Caches', 'delst-studio');
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'delst-studio');
}

/**
 * Per-user project folder (class palette, annotations): $DELST_PROJECT_DIR, else
 * $XDG_DATA_HOME/delst-studio/default-project, else ~/.local/share/delst-studio/default-project.
 */
export function defaultProjectDir(): string {
  if (process.env.DELST_PROJECT_DIR) return resolve(process.env.DELST_PROJECT_DIR);
  if (process.platform === 'win32' && process.env.APPDATA) {
    return join(process.env.APPDATA, 'delst-studio', 'default-project');
  }
  if (process.platform === 'darwin') {
    return join(homedir(), 'Library', 'Application Support', 'delst-studio', 'default-project');
  }
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'delst-studio', 'default-project');
}

async function runElectron(binary: string, root: string, argv: readonly string[]): Promise<never> {
  const child = spawn(binary, [join(root, 'dist', 'electron', 'main.js'), ...argv], { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  process.on('SIGINT', forward('SIGINT'));
  process.on('SIGTERM', forward('SIGTERM'));
  const code = await new Promise<number>((done) => {
    child.on('error', (error) => {
      console.error(`cannot start Electron: ${error.message}`);
      done(1);
    });
    child.on('exit', (status, signal) => done(status ?? (signal ? 1 : 0)));
  });
  process.exit(code);
}

async function runBrowser(root: string, options: LaunchOptions, electronMissing: boolean): Promise<void> {
  // Imported here so the Electron path does not load the core.
  const { Studio } = await import('./core/api/studio.js');
  const { startBrowserServer } = await import('./server/browser-server.js');

  const studio = new Studio({ cacheDir: defaultCacheDir(), projectDir: options.project ?? defaultProjectDir() });
  console.log(`Project folder: ${studio.projectDir}`);
  const demo = demoPath();
  const paths = [...(options.demo && existsSync(demo) ? [demo] : []), ...options.paths];
  for (const path of paths) {
    try {
      const { failed } = await studio.openPath(path);
      for (const message of failed) console.error(message);
    } catch (error) {
      console.error(error instanceof Error ? error.message : String(error));
    }
  }
  const server = await startBrowserServer({
    studio,
    port: options.port,
    rendererDir: join(root, 'dist', 'renderer'),
  });
  const how = electronMissing ? 'Electron binary not available here; serving' : 'Serving';
  console.log(`${how} DELST Studio in browser mode at ${server.url}`);

  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    Promise.all([studio.shutdown(), server.close()]).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

export async function main(argv: readonly string[]): Promise<void> {
  let options: LaunchOptions;
  try {
    options = parseArgs(argv);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(2);
  }
  const root = packageRoot();
  const binary = options.browser ? null : findElectronBinary();
  if (binary) return runElectron(binary, root, argv);
  if (!existsSync(join(root, 'dist', 'renderer', 'index.html'))) {
    console.error('The renderer is not built: run `npm run build` first.');
    process.exit(1);
  }
  await runBrowser(root, options, !options.browser);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(1);
  });
}

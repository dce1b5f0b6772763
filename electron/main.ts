// The Electron shell: one locked-down window showing the renderer from `delst://app`, tiles from
// `delst://tiles`, and the StudioApi over one IPC channel. Kept thin: everything it calls is tested elsewhere
// (the core directly, the renderer and the routes through the browser mode).

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, dialog, ipcMain, Menu, protocol, session } from 'electron';
import { STUDIO_API_METHODS, type StudioApiMethod } from '../core/api/api.js';
import { Studio } from '../core/api/studio.js';
import { demoPath, packageRoot } from '../core/resources.js';
import { defaultCacheDir, defaultProjectDir } from '../launch.js';
import {
  confinedFile,
  contentSecurityPolicy,
  contentType,
  TILE_PATH,
  tileFormatMatches,
} from '../server/browser-server.js';

const SCHEME = 'delst';
const APP_ORIGIN = `${SCHEME}://app`;
const API_CHANNEL = 'delst:api';

const CONTENT_SECURITY_POLICY = contentSecurityPolicy(`${SCHEME}://tiles`);

const COMMON_HEADERS = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };

// Must run before `ready`: a standard, secure scheme gets an origin, fetch and CORS like https.
protocol.registerSchemesAsPrivileged([
  { scheme: SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, corsEnabled: true } },
]);

const here = fileURLToPath(new URL('.', import.meta.url));
const root = packageRoot();
const rendererDir = join(root, 'dist', 'renderer');
const studio = new Studio({ cacheDir: defaultCacheDir(), projectDir: projectArg(process.argv) ?? defaultProjectDir() });
let window: BrowserWindow | null = null;

/** `--project DIR` (or `--project=DIR`) from a command line, or null. */
function projectArg(argv: readonly string[]): string | null {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--project' && argv[i + 1]) return resolve(argv[i + 1]);
    if (argv[i].startsWith('--project=')) return resolve(argv[i].slice('--project='.length));
  }
  return null;
}

/** Paths and `--no-demo` from a command line, ignoring Chromium's and our launcher's other switches. */
function cliRequest(argv: readonly string[], cwd = process.cwd()): { demo: boolean; paths: string[] } {
  const args = argv.slice(app.isPackaged ? 1 : 2);
  const paths: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--port' || args[i] === '--project') i++;
    else if (!args[i].startsWith('-')) paths.push(resolve(cwd, args[i]));
  }
  return { demo: !args.includes('--no-demo'), paths };
}

function notFound(): Response {
  return new Response('not found', { status: 404, headers: { ...COMMON_HEADERS, 'content-type': 'text/plain' } });
}

async function serve(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (request.method !== 'GET') return new Response('method not allowed', { status: 405, headers: COMMON_HEADERS });
  if (url.host === 'app') {
    const file = await confinedFile(rendererDir, url.pathname === '/' ? '/index.html' : url.pathname);
    if (!file) return notFound();
    return new Response(await readFile(file), {
      headers: {
        ...COMMON_HEADERS,
        'content-type': contentType(file),
        'content-security-policy': CONTENT_SECURITY_POLICY,
      },
    });
  }
  if (url.host === 'tiles') {
    const match = TILE_PATH.exec(url.pathname.slice(1));
    if (!match) return notFound();
    const [, key, level, col, row, format] = match;
    const file = await Promise.resolve(studio.slides.tileFile(key, Number(level), Number(col), Number(row))).catch(
      () => null,
    );
    if (!file || !tileFormatMatches(file, format)) return notFound();
    return new Response(await readFile(file), {
      headers: {
        ...COMMON_HEADERS,
        'content-type': contentType(file),
        'cache-control': 'private, max-age=86400',
        // The page (delst://app) draws tiles on canvas/WebGL: allow it to read them without tainting.
        'access-control-allow-origin': APP_ORIGIN,
      },
    });
  }
  return notFound();
}

type ApiReply = { ok: true; value: unknown } | { ok: false; error: string };

async function callApi(senderUrl: string, method: unknown, args: unknown): Promise<ApiReply> {
  if (!senderUrl.startsWith(`${APP_ORIGIN}/`)) return { ok: false, error: 'forbidden' };
  if (typeof method !== 'string' || !(STUDIO_API_METHODS as readonly string[]).includes(method)) {
    return { ok: false, error: `unknown API method: ${String(method).slice(0, 64)}` };
  }
  if (!Array.isArray(args)) return { ok: false, error: 'arguments must be an array' };
  const fn = studio[method as StudioApiMethod] as (...a: unknown[]) => Promise<unknown>;
  try {
    return { ok: true, value: (await fn.apply(studio, args)) ?? null };
  } catch (error) {
    // DataError messages name the file and the problem; no stacks cross to the renderer.
    if (!(error instanceof Error && error.name === 'DataError')) console.error(`delst api ${method}:`, error);
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/** Opens paths; reports failures in a dialog; tells the page to refresh its list. */
async function openPaths(paths: readonly string[], quiet = false): Promise<void> {
  const report = (message: string) => (quiet ? console.error(message) : dialog.showErrorBox('Cannot open', message));
  for (const path of paths) {
    try {
      const { failed } = await studio.openPath(path);
      if (failed.length > 0) report(failed.join('\n'));
    } catch (error) {
      report(error instanceof Error ? error.message : String(error));
    }
  }
  await window?.webContents
    .executeJavaScript("window.dispatchEvent(new CustomEvent('delst:sections-changed'))")
    .catch(() => undefined);
}

async function chooseAndOpen(kind: 'openDirectory' | 'openFile'): Promise<void> {
  const options: Electron.OpenDialogOptions = {
    title: kind === 'openDirectory' ? 'Open a section folder' : 'Open a section file',
    properties: [kind, 'multiSelections'],
    ...(kind === 'openFile'
      ? {
          filters: [
            { name: 'Sections and H&E images', extensions: ['h5ad', 'h5', 'png', 'jpg', 'jpeg', 'tif', 'tiff', 'svs'] },
            { name: 'All files', extensions: ['*'] },
          ],
        }
      : {}),
  };
  const result = window ? await dialog.showOpenDialog(window, options) : await dialog.showOpenDialog(options);
  if (!result.canceled) await openPaths(result.filePaths);
}

function buildMenu(): Menu {
  const template: Electron.MenuItemConstructorOptions[] = [
    ...(process.platform === 'darwin' ? [{ role: 'appMenu' as const }] : []),
    {
      label: 'File',
      submenu: [
        { label: 'Open Folder...', accelerator: 'CmdOrCtrl+O', click: () => void chooseAndOpen('openDirectory') },
        { label: 'Open File...', accelerator: 'CmdOrCtrl+Shift+O', click: () => void chooseAndOpen('openFile') },
        { type: 'separator' },
        { label: 'Quit', role: 'quit' },
      ],
    },
    { role: 'editMenu' },
    { role: 'viewMenu' },
  ];
  return Menu.buildFromTemplate(template);
}

function createWindow(): BrowserWindow {
  const win = new BrowserWindow({
    width: 1400,
    height: 900,
    minWidth: 800,
    minHeight: 500,
    title: 'DELST Studio',
    backgroundColor: '#f5f6f8',
    show: false,
    webPreferences: {
      preload: join(here, 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      webviewTag: false,
      navigateOnDragDrop: false,
      spellcheck: false,
    },
  });
  win.once('ready-to-show', () => win.show());
  win.on('closed', () => {
    if (window === win) window = null;
  });
  void win.loadURL(`${APP_ORIGIN}/index.html`);
  return win;
}

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', (_event, argv, workingDirectory) => {
    if (window) {
      if (window.isMinimized()) window.restore();
      window.focus();
    }
    void openPaths(cliRequest(argv, workingDirectory).paths);
  });

  // Every web contents: no navigation away, no new windows, no <webview>.
  app.on('web-contents-created', (_event, contents) => {
    contents.on('will-navigate', (event) => event.preventDefault());
    contents.on('will-redirect', (event) => event.preventDefault());
    contents.on('will-attach-webview', (event) => event.preventDefault());
    contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  });

  app.on('window-all-closed', () => app.quit());
  // A training run saves a checkpoint; the project's WAL moves into its database file (every change is committed).
  let quitting = false;
  app.on('will-quit', (event) => {
    if (quitting) return;
    quitting = true;
    event.preventDefault();
    void studio.shutdown().finally(() => app.quit());
  });

  void app.whenReady().then(async () => {
    session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
    session.defaultSession.setPermissionCheckHandler(() => false);
    protocol.handle(SCHEME, serve);
    ipcMain.handle(API_CHANNEL, (event, method: unknown, args: unknown) =>
      callApi(event.senderFrame?.url ?? '', method, args),
    );
    Menu.setApplicationMenu(buildMenu());

    const request = cliRequest(process.argv);
    const demo = demoPath();
    await openPaths([...(request.demo && existsSync(demo) ? [demo] : []), ...request.paths], true);
    window = createWindow();
  });
}

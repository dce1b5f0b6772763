// The Electron shell: one locked-down window showing the renderer from `delst://app`, tiles from
// `delst://tiles`, and the StudioApi over one IPC channel. Kept thin: everything it calls is tested elsewhere
// (the core directly, the renderer and the routes through the browser mode, the security policy in security.ts).

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, dialog, ipcMain, Menu, protocol, session } from 'electron';
import type { StudioApiMethod } from '../core/api/api.js';
import { Studio } from '../core/api/studio.js';
import { demoPath, packageRoot } from '../core/resources.js';
import { defaultCacheDir, defaultProjectDir } from '../launch.js';
import {
  confinedFile,
  contentSecurityPolicy,
  contentType,
  realFileInside,
  TILE_PATH,
  tileFormatMatches,
} from '../server/browser-server.js';
import {
  API_CHANNEL,
  APP_ORIGIN,
  APP_SCHEME,
  isAllowedNavigation,
  isAllowedRequest,
  isAppUrl,
  permissionAllowed,
  TILE_ORIGIN,
  validateApiCall,
  WEB_PREFERENCES,
  WINDOW_OPEN_DENIED,
} from './security.js';

const CONTENT_SECURITY_POLICY = contentSecurityPolicy(TILE_ORIGIN);

const COMMON_HEADERS = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };

// Must run before `ready`: a standard, secure scheme gets an origin, fetch and CORS like https.
protocol.registerSchemesAsPrivileged([
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, corsEnabled: true } },
]);
// Every renderer sandboxed, whatever a window asks for (also before `ready`).
app.enableSandbox();

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
    const real = file && tileFormatMatches(file, format) ? await realFileInside(studio.slides.dir, file) : null;
    if (!real) return notFound();
    return new Response(await readFile(real), {
      headers: {
        ...COMMON_HEADERS,
        'content-type': contentType(real),
        'cache-control': 'private, max-age=86400',
        // The page (delst://app) draws tiles on canvas/WebGL: allow it to read them without tainting.
        'access-control-allow-origin': APP_ORIGIN,
      },
    });
  }
  return notFound();
}

type ApiReply = { ok: true; value: unknown } | { ok: false; error: string };

/** One API call from a page: only the app's own main frame may call, and only with a valid call. */
async function callApi(event: Electron.IpcMainInvokeEvent, method: unknown, args: unknown): Promise<ApiReply> {
  const frame = event.senderFrame;
  if (!frame || frame.parent !== null || !isAppUrl(frame.url)) return { ok: false, error: 'forbidden' };
  let name: StudioApiMethod;
  try {
    name = validateApiCall(method, args);
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
  const fn = studio[name] as (...a: unknown[]) => Promise<unknown>;
  try {
    return { ok: true, value: (await fn.apply(studio, args as unknown[])) ?? null };
  } catch (error) {
    // DataError messages name the file and the problem; no stacks cross to the renderer.
    if (!(error instanceof Error && error.name === 'DataError')) console.error(`delst api ${name}:`, error);
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
    webPreferences: { ...WEB_PREFERENCES, preload: join(here, 'preload.cjs') },
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

  // macOS hands files opened from the Finder (the .h5ad association) to the app as 'open-file' events, the first
  // ones before `ready`.
  const filesBeforeReady: string[] = [];
  app.on('open-file', (event, path) => {
    event.preventDefault();
    if (app.isReady()) void openPaths([path]);
    else filesBeforeReady.push(path);
  });

  // Every web contents (windows, devtools, any frame): no navigation away, no new windows, no <webview>.
  app.on('web-contents-created', (_event, contents) => {
    const guard = (details: Electron.Event<{ url: string }>) => {
      if (!isAllowedNavigation(details.url)) details.preventDefault();
    };
    contents.on('will-navigate', guard);
    contents.on('will-frame-navigate', guard);
    contents.on('will-redirect', guard);
    contents.on('will-attach-webview', (event) => event.preventDefault());
    contents.setWindowOpenHandler(() => WINDOW_OPEN_DENIED);
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
    const { defaultSession } = session;
    defaultSession.setPermissionRequestHandler((_contents, permission, callback) =>
      callback(permissionAllowed(permission)),
    );
    defaultSession.setPermissionCheckHandler((_contents, permission) => permissionAllowed(permission));
    defaultSession.setDevicePermissionHandler(() => false);
    // Offline: nothing but the app's own scheme (and blobs, data URLs, devtools) leaves a page.
    defaultSession.webRequest.onBeforeRequest((details, callback) =>
      callback({ cancel: !isAllowedRequest(details.url) }),
    );
    protocol.handle(APP_SCHEME, serve);
    ipcMain.handle(API_CHANNEL, (event, method: unknown, args: unknown) => callApi(event, method, args));
    Menu.setApplicationMenu(buildMenu());

    const request = cliRequest(process.argv);
    const demo = demoPath();
    const given = [...request.paths, ...filesBeforeReady];
    await openPaths([...(request.demo && existsSync(demo) ? [demo] : []), ...given], true);
    window = createWindow();
  });
}

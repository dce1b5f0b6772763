// The Electron security policy (electron/security.ts), which main.ts wires into Electron's hooks: tested here, where
// the Electron binary is absent. What only a running Electron can show (that the hooks fire) is listed in the note.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STUDIO_API_METHODS } from '../../core/api/api.js';
import { Studio } from '../../core/api/studio.js';
import { packageRoot } from '../../core/resources.js';
import {
  API_ARGUMENTS,
  ApiCallError,
  apiSizeLimit,
  isAllowedNavigation,
  isAllowedRequest,
  isApiMethod,
  permissionAllowed,
  validateApiCall,
  WEB_PREFERENCES,
  WINDOW_OPEN_DENIED,
} from '../../electron/security.js';

const root = packageRoot();

/** The ApiCallError a call is refused with (status and message), or null when it passes. */
function refusal(method: unknown, args: unknown): { status: number; message: string } | null {
  try {
    validateApiCall(method, args);
    return null;
  } catch (error) {
    if (!(error instanceof ApiCallError)) throw error;
    return { status: error.status, message: error.message };
  }
}

describe('window and session policy', () => {
  it('isolates, sandboxes and keeps Node out of every renderer', () => {
    expect(WEB_PREFERENCES).toMatchObject({
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      navigateOnDragDrop: false,
    });
    expect(Object.keys(WEB_PREFERENCES)).not.toContain('preload');
    expect(Object.keys(WEB_PREFERENCES)).not.toContain('enableRemoteModule');
  });

  it('main.ts wires the policy: preferences, navigation, new windows, permissions, requests, API checks', () => {
    const main = readFileSync(join(root, 'electron', 'main.ts'), 'utf8');
    expect(main).toContain('...WEB_PREFERENCES');
    expect(main).toContain('app.enableSandbox()');
    for (const event of ['will-navigate', 'will-frame-navigate', 'will-redirect']) {
      expect(main).toMatch(new RegExp(`contents\\.on\\('${event}', guard\\)`));
    }
    expect(main).toContain("contents.on('will-attach-webview', (event) => event.preventDefault())");
    expect(main).toContain('contents.setWindowOpenHandler(() => WINDOW_OPEN_DENIED)');
    expect(main).toContain('callback(permissionAllowed(permission))');
    expect(main).toContain('setPermissionCheckHandler((_contents, permission) => permissionAllowed(permission))');
    expect(main).toContain('callback({ cancel: !isAllowedRequest(details.url) })');
    expect(main).toContain('validateApiCall(method, args)');
    // No switch that would turn a protection off, no remote module, no auto-update or crash upload.
    expect(main).not.toMatch(/nodeIntegration: true|contextIsolation: false|sandbox: false|webSecurity: false/);
    expect(main).not.toMatch(/@electron\/remote|enableRemoteModule|autoUpdater|crashReporter|shell\.openExternal/);
  });

  it('the preload exposes one call function and never ipcRenderer itself', () => {
    const preload = readFileSync(join(root, 'electron', 'preload.cts'), 'utf8');
    expect(preload.match(/exposeInMainWorld\(/g)).toHaveLength(1);
    expect(preload).not.toMatch(/exposeInMainWorld\([^)]*ipcRenderer\s*[,)]/);
    expect(preload).not.toMatch(/ipcRenderer\.(send|on|sendSync)\b/);
    expect(preload).toContain("ipcRenderer.invoke('delst:api', method, args)");
  });

  it('allows navigation only within the app', () => {
    expect(isAllowedNavigation('delst://app/index.html')).toBe(true);
    for (const url of [
      'https://example.com/',
      'http://127.0.0.1:8080/',
      'file:///etc/passwd',
      'javascript:alert(1)',
      'data:text/html,<script>1</script>',
      'delst://tiles/abc/0/0_0.jpeg',
      'delst://app.evil.example/',
      'delst://evil@app.example/',
      'about:blank',
      '',
      'not a url',
      null,
      42,
    ]) {
      expect(isAllowedNavigation(url), String(url)).toBe(false);
    }
  });

  it('lets no request leave for the network', () => {
    for (const url of ['delst://app/index.html', 'delst://tiles/k/0/0_0.jpeg', 'blob:delst://app/1', 'data:,x']) {
      expect(isAllowedRequest(url), url).toBe(true);
    }
    for (const url of [
      'https://fonts.googleapis.com/css',
      'http://127.0.0.1:9/',
      'ws://127.0.0.1:9/',
      'wss://example.com/',
      'ftp://example.com/',
      'file:///etc/passwd',
      'chrome-extension://abc/x.js',
      '',
      undefined,
    ]) {
      expect(isAllowedRequest(url), String(url)).toBe(false);
    }
  });

  it('denies every permission and every new window', () => {
    for (const permission of ['media', 'notifications', 'geolocation', 'clipboard-read', 'openExternal', 'unknown']) {
      expect(permissionAllowed(permission), permission).toBe(false);
    }
    expect(WINDOW_OPEN_DENIED).toEqual({ action: 'deny' });
  });
});

describe('validateApiCall', () => {
  it('has an argument list for every API method that matches the implementation', () => {
    expect(Object.keys(API_ARGUMENTS).sort()).toEqual([...STUDIO_API_METHODS].sort());
    for (const method of STUDIO_API_METHODS) {
      const specs = API_ARGUMENTS[method] as readonly string[];
      const implementation = (Studio.prototype as unknown as Record<string, (...a: unknown[]) => unknown>)[method];
      expect(typeof implementation, method).toBe('function');
      // Function.length counts the parameters before the first default: never more than the list allows.
      expect(implementation.length, method).toBeLessThanOrEqual(specs.length);
    }
  });

  it('passes the calls the renderer makes', () => {
    const ok: [string, unknown[]][] = [
      ['listSections', []],
      ['openPath', ['/data/A1']],
      ['searchGenes', ['s1', 'erb']],
      ['searchGenes', ['s1', 'erb', 5]],
      ['createClass', ['tumour', null]],
      ['labelSpots', ['s1', [1, 2], null]],
      [
        'addRegion',
        [
          's1',
          [
            [0, 0],
            [1, 0],
            [0, 1],
          ],
          3,
        ],
      ],
      ['exportAnnotations', ['s1', 'geojson', null]],
      ['uploadSection', ['A1', [{ path: 'spots.tsv', data: 'AAAA', offset: 0 }], { done: false }]],
      ['startTraining', [{ sectionIds: ['s1'], preset: 'quick', epochs: 1, name: undefined }]],
      ['resumeTraining', ['m1', null]],
      ['predictSection', ['s1', { modelId: 'base', genes: ['ERBB2'] }]],
    ];
    for (const [method, args] of ok) expect(validateApiCall(method, args), method).toBe(method);
  });

  it('refuses unknown methods, including inherited names', () => {
    for (const name of ['nope', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'slides', 'addSection']) {
      expect(isApiMethod(name), name).toBe(false);
      expect(refusal(name, [])).toEqual({ status: 404, message: `unknown API method: ${name}` });
    }
    expect(refusal(42, [])?.status).toBe(404);
  });

  it('refuses arguments that are not an array, or of the wrong count', () => {
    expect(refusal('listSections', {})).toEqual({
      status: 400,
      message: 'listSections: the arguments must be an array',
    });
    expect(refusal('openPath', [])).toEqual({ status: 400, message: 'openPath: expected 1 arguments, got 0' });
    expect(refusal('openPath', ['/a', '/b'])?.message).toBe('openPath: expected 1 arguments, got 2');
    expect(refusal('searchGenes', ['s1'])?.message).toBe('searchGenes: expected 2 to 3 arguments, got 1');
    expect(refusal('listSections', [1])?.status).toBe(400);
  });

  it('refuses arguments of the wrong type, naming the method and the argument', () => {
    expect(refusal('openPath', [42])).toEqual({ status: 400, message: 'openPath: argument 1 must be a string' });
    expect(refusal('openPath', [null])?.message).toBe('openPath: argument 1 must be a string');
    expect(refusal('getSpotDetails', ['s1', 1.5])?.message).toBe('getSpotDetails: argument 2 must be an integer');
    expect(refusal('getSpotDetails', ['s1', '3'])?.status).toBe(400);
    expect(refusal('labelSpots', ['s1', 'all', 1])?.message).toBe('labelSpots: argument 2 must be an array');
    expect(refusal('labelSpots', ['s1', [1], 'x'])?.message).toBe('labelSpots: argument 3 must be an integer or null');
    expect(refusal('startTraining', [['s1']])?.message).toBe('startTraining: argument 1 must be an object');
    expect(refusal('startTraining', [null])?.status).toBe(400);
    expect(refusal('exportAnnotations', ['s1', 'csv', 7])?.message).toBe(
      'exportAnnotations: argument 3 must be a string or null',
    );
  });

  it('refuses what is not plain JSON data (IPC can carry more than JSON)', () => {
    const cases: unknown[] = [
      { sectionIds: new Set(['s1']), preset: 'quick' },
      { sectionIds: ['s1'], preset: 'quick', epochs: Number.NaN },
      { sectionIds: ['s1'], preset: 'quick', started: new Date() },
      { sectionIds: ['s1'], preset: 'quick', weights: new Float32Array(4) },
      JSON.parse('{"sectionIds":["s1"],"preset":"quick","__proto__":{"polluted":true}}'),
    ];
    for (const request of cases) {
      const refused = refusal('startTraining', [request]);
      expect(refused?.status, JSON.stringify(request)).toBe(400);
      expect(refused?.message).toMatch(/^startTraining: /);
    }
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(refusal('reorderClasses', [deep])?.message).toBe('reorderClasses: the arguments nest too deeply');
  });

  it('refuses arguments over the method size limit', () => {
    expect(apiSizeLimit('openPath')).toBe(1 << 20);
    expect(apiSizeLimit('uploadSection')).toBe(16 << 20);
    expect(refusal('openPath', ['x'.repeat((1 << 20) + 1)])?.status).toBe(413);
    expect(refusal('labelSpots', ['s1', new Array(200_000).fill(123456), 1])?.status).toBe(413);
    expect(refusal('importAnnotations', ['s1', 'csv', 'x'.repeat(2 << 20)])).toBeNull();
    const chunk = (chars: number) => ['A1', [{ path: 'a.tsv', data: 'A'.repeat(chars) }], { done: false }];
    expect(refusal('uploadSection', chunk(11_200_000))).toBeNull();
    expect(refusal('uploadSection', chunk(17 << 20))?.message).toMatch(/^uploadSection: the arguments are larger/);
  });
});

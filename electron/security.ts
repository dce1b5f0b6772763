// The Electron security checklist as plain data and functions, free of any Electron import so that it is unit-tested
// where the Electron binary is absent, and shared with the browser-mode server (the API call checks). main.ts only
// wires these into Electron's hooks.
//
// What the checklist asks and where it is done:
// - context isolation, sandboxed renderers, no Node in the renderer or its workers, no <webview>: WEB_PREFERENCES;
// - a strict Content-Security-Policy: contentSecurityPolicy() in server/browser-server.ts, sent by both shells;
// - no navigation away and no new windows: isAllowedNavigation(), WINDOW_OPEN_DENIED (every web contents);
// - permission requests and checks denied: permissionAllowed();
// - no request leaves the app's own scheme: isAllowedRequest() (the offline guarantee, belt and braces with the CSP);
// - the `remote` module is gone from Electron (removed in 14) and nothing re-adds it;
// - the preload exposes one function; every call is checked in main before dispatch: validateApiCall().

import type { WebPreferences } from 'electron';
import { STUDIO_API_METHODS, type StudioApiMethod } from '../core/api/api.js';

export const APP_SCHEME = 'delst';
/** Where the renderer is served from. */
export const APP_ORIGIN = `${APP_SCHEME}://app`;
/** Where slide tiles are served from. */
export const TILE_ORIGIN = `${APP_SCHEME}://tiles`;
/** The one IPC channel of the API. */
export const API_CHANNEL = 'delst:api';

/** webPreferences of every window; main adds the preload's path. */
export const WEB_PREFERENCES = {
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  nodeIntegrationInWorker: false,
  nodeIntegrationInSubFrames: false,
  webSecurity: true,
  allowRunningInsecureContent: false,
  experimentalFeatures: false,
  webviewTag: false,
  navigateOnDragDrop: false,
  safeDialogs: true,
  spellcheck: false,
} as const satisfies WebPreferences;

/** The answer of every window-open handler: no pop-ups, no external links opened from the page. */
export const WINDOW_OPEN_DENIED = { action: 'deny' } as const;

/** Parses a URL, or null. */
function parse(url: unknown): URL | null {
  if (typeof url !== 'string') return null;
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

/** Whether a URL is a page of the app itself (delst://app/...). */
export function isAppUrl(url: unknown): boolean {
  const parsed = parse(url);
  return parsed !== null && parsed.protocol === `${APP_SCHEME}:` && parsed.host === 'app';
}

/**
 * Whether a web contents may navigate to `url` (`will-navigate`, `will-redirect`, `will-frame-navigate`): only to
 * the app's own pages. The renderer never navigates; this stops dropped or injected links, remote pages, file://
 * and javascript: URLs.
 */
export function isAllowedNavigation(url: unknown): boolean {
  return isAppUrl(url);
}

/** Schemes the app's pages may load from: its own, in-memory blobs and data URLs, about:blank, the devtools. */
const REQUEST_SCHEMES = new Set([`${APP_SCHEME}:`, 'blob:', 'data:', 'about:', 'devtools:']);

/** Whether the session lets a request through: never to the network (http, https, ws, ftp, file...). */
export function isAllowedRequest(url: unknown): boolean {
  const parsed = parse(url);
  return parsed !== null && REQUEST_SCHEMES.has(parsed.protocol);
}

/** Permission requests and checks (camera, notifications, geolocation, clipboard, ...): the app needs none. */
export function permissionAllowed(_permission: string): boolean {
  return false;
}

/** A refused API call, with the HTTP status browser mode answers it with. */
export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}

type Kind = 'string' | 'int' | 'array' | 'object';
/** `kind`: required; `kind|null`: required, may be null; `kind?`: may be left out, undefined or null. */
type ArgSpec = Kind | `${Kind}|null` | `${Kind}?`;

/** The arguments of each API method (their deeper structure is checked by the core). */
export const API_ARGUMENTS = {
  listSections: [],
  openPath: ['string'],
  listRecent: [],
  closeSection: ['string'],
  getSpots: ['string'],
  getSlide: ['string'],
  searchGenes: ['string', 'string', 'int?'],
  getGeneValues: ['string', 'string'],
  getSpotDetails: ['string', 'int'],
  listClasses: [],
  createClass: ['string', 'string?'],
  renameClass: ['int', 'string'],
  recolorClass: ['int', 'string'],
  reorderClasses: ['array'],
  deleteClass: ['int'],
  getAnnotations: ['string'],
  labelSpots: ['string', 'array', 'int|null'],
  addRegion: ['string', 'array', 'int|null'],
  deleteRegion: ['string', 'string'],
  undo: ['string'],
  redo: ['string'],
  exportAnnotations: ['string', 'string', 'string?'],
  importAnnotations: ['string', 'string', 'string'],
  uploadSection: ['string', 'array', 'object?'],
  startTraining: ['object'],
  getTrainingStatus: [],
  cancelTraining: [],
  resumeTraining: ['string', 'int?'],
  listModels: [],
  renameModel: ['string', 'string'],
  deleteModel: ['string'],
  exportModel: ['string', 'string'],
  importModel: ['string'],
  predictSection: ['string', 'object'],
  tileSection: ['string', 'object'],
  findSimilarSpots: ['string', 'int', 'object'],
  getHyperbolicMap: ['array', 'object'],
  getInferenceStatus: [],
  cancelInference: [],
} as const satisfies Record<StudioApiMethod, readonly ArgSpec[]>;

const MAX_BODY_BYTES = 1 << 20;
/** The largest size of the arguments of each method that takes more than MAX_BODY_BYTES. */
const SIZE_LIMITS: Partial<Record<StudioApiMethod, number>> = {
  // A whole GeoJSON file (every spot a 32-gon: ~1 kB a spot).
  importAnnotations: 256 << 20,
  // Chunks of files in base64: the renderer sends at most 8 MiB of bytes a call.
  uploadSection: 16 << 20,
};

/** The largest size (bytes of JSON) of an API method's arguments: the HTTP body limit, the IPC size limit. */
export function apiSizeLimit(method: StudioApiMethod): number {
  return SIZE_LIMITS[method] ?? MAX_BODY_BYTES;
}

/** Nesting deeper than any argument needs (a polygon is 3 levels, an upload's file list 3). */
const MAX_DEPTH = 16;
const METHODS: ReadonlySet<string> = new Set(STUDIO_API_METHODS);

/** Whether `name` is a method of the API (own names only: never `constructor`, `__proto__`, ...). */
export function isApiMethod(name: unknown): name is StudioApiMethod {
  return typeof name === 'string' && METHODS.has(name);
}

/**
 * Checks an API call before it reaches the core: a method of the API, an array of arguments of the right count and
 * types, plain JSON data only (no Map, Date, typed array, function, NaN or `__proto__` key, which IPC could carry)
 * and no larger than the method's size limit. Throws ApiCallError naming the method and the problem.
 */
export function validateApiCall(method: unknown, args: unknown): StudioApiMethod {
  if (!isApiMethod(method)) throw new ApiCallError(404, `unknown API method: ${String(method).slice(0, 64)}`);
  if (!Array.isArray(args)) throw new ApiCallError(400, `${method}: the arguments must be an array`);
  const specs: readonly ArgSpec[] = API_ARGUMENTS[method];
  const required = specs.filter((spec) => !spec.endsWith('?')).length;
  if (args.length < required || args.length > specs.length) {
    const expected = required === specs.length ? `${required}` : `${required} to ${specs.length}`;
    throw new ApiCallError(400, `${method}: expected ${expected} arguments, got ${args.length}`);
  }
  specs.forEach((spec, i) => checkArgument(method, i, spec, args[i]));
  const limit = apiSizeLimit(method);
  if (jsonSize(args, limit, method) > limit) {
    throw new ApiCallError(413, `${method}: the arguments are larger than ${limit} bytes`);
  }
  return method;
}

function checkArgument(method: string, index: number, spec: ArgSpec, value: unknown): void {
  const kind = spec.replace(/\?$|\|null$/, '') as Kind;
  if (value === null && spec !== kind) return;
  if (value === undefined && spec.endsWith('?')) return;
  const ok =
    kind === 'string'
      ? typeof value === 'string'
      : kind === 'int'
        ? Number.isSafeInteger(value)
        : kind === 'array'
          ? Array.isArray(value)
          : isPlainObject(value);
  if (!ok) {
    const what =
      kind === 'int' ? 'an integer' : kind === 'array' ? 'an array' : `a${kind === 'object' ? 'n' : ''} ${kind}`;
    throw new ApiCallError(400, `${method}: argument ${index + 1} must be ${what}${spec === kind ? '' : ' or null'}`);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * The size of a value as JSON (strings by their length), stopping once past `limit`; throws ApiCallError on
 * anything that is not JSON data or nests deeper than MAX_DEPTH.
 */
function jsonSize(value: unknown, limit: number, method: string, depth = 0): number {
  if (depth > MAX_DEPTH) throw new ApiCallError(400, `${method}: the arguments nest too deeply`);
  if (value === null || value === undefined || typeof value === 'boolean') return 5;
  if (typeof value === 'string') return value.length + 2;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ApiCallError(400, `${method}: the arguments hold a non-finite number`);
    return 24;
  }
  let size = 2;
  if (Array.isArray(value)) {
    for (const item of value) {
      size += jsonSize(item, limit, method, depth + 1) + 1;
      if (size > limit) return size;
    }
    return size;
  }
  if (!isPlainObject(value)) throw new ApiCallError(400, `${method}: the arguments must be plain JSON data`);
  for (const [key, item] of Object.entries(value)) {
    if (key === '__proto__') throw new ApiCallError(400, `${method}: the arguments hold a __proto__ key`);
    size += key.length + 4 + jsonSize(item, limit, method, depth + 1);
    if (size > limit) return size;
  }
  return size;
}

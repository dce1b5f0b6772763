// The renderer's one door to the core: the StudioApi over Electron's preload bridge when it is there, else over
// HTTP to the browser-mode server. The rest of the renderer sees only `Api`.

import type {
  AnnotationClassInfo,
  AnnotationExport,
  AnnotationImportReport,
  SectionAnnotations,
  GeneSummary,
  GeneValues,
  OpenPathResult,
  RecentItem,
  SectionSpots,
  SectionSummary,
  SlideInfo,
  SpotDetails,
  StudioApi,
  StudioApiMethod,
  UploadSectionResult,
  ModelInfo,
  SectionPrediction,
  TileResult,
  TrainingStatus,
  SimilarSpot,
  HyperbolicMap,
  InferenceStatus,
} from './api-types.js';

/** What electron/preload.cts exposes. */
interface DelstBridge {
  call(method: string, args: unknown[]): Promise<{ ok: true; value: unknown } | { ok: false; error: string }>;
  readonly tileUrlBase: string;
}

declare global {
  interface Window {
    delst?: DelstBridge;
  }
}

export interface Api extends StudioApi {
  /** Where the renderer runs: Electron (IPC, delst:// tiles) or a browser (HTTP, same-origin tiles). */
  readonly mode: 'electron' | 'browser';
  tileUrl(key: string, level: number, col: number, row: number, format: SlideInfo['format']): string;
}

const TOKEN_KEY = 'delst-token';

/** Takes the token from `?token=` (then drops it from the address bar), or from this tab's earlier load. */
function takeToken(): string {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    return fromUrl;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

function tilePath(key: string, level: number, col: number, row: number, format: string): string {
  return `${encodeURIComponent(key)}/${level}/${col}_${row}.${format}`;
}

export function createApi(): Api {
  let call: (method: StudioApiMethod, args: unknown[]) => Promise<unknown>;
  let tileUrl: Api['tileUrl'];
  let mode: Api['mode'];

  const bridge = window.delst;
  if (bridge) {
    mode = 'electron';
    call = async (method, args) => {
      const reply = await bridge.call(method, args);
      if (!reply.ok) throw new Error(reply.error);
      return reply.value;
    };
    tileUrl = (key, level, col, row, format) => `${bridge.tileUrlBase}/${tilePath(key, level, col, row, format)}`;
  } else {
    mode = 'browser';
    const token = takeToken();
    call = async (method, args) => {
      const response = await fetch(`/api/${method}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-delst-token': token },
        body: JSON.stringify(args),
        credentials: 'same-origin',
        cache: 'no-store',
      });
      const body: unknown = await response.json().catch(() => null);
      if (!response.ok) {
        const message = body && typeof body === 'object' && 'error' in body ? String(body.error) : '';
        throw new Error(message || `${method} failed: HTTP ${response.status}`);
      }
      return body;
    };
    tileUrl = (key, level, col, row, format) => `/tiles/${tilePath(key, level, col, row, format)}`;
  }

  return {
    mode,
    tileUrl,
    listSections: () => call('listSections', []) as Promise<SectionSummary[]>,
    openPath: (path) => call('openPath', [path]) as Promise<OpenPathResult>,
    listRecent: () => call('listRecent', []) as Promise<RecentItem[]>,
    closeSection: (sectionId) => call('closeSection', [sectionId]) as Promise<SectionSummary[]>,
    getSpots: (sectionId) => call('getSpots', [sectionId]) as Promise<SectionSpots>,
    getSlide: (sectionId) => call('getSlide', [sectionId]) as Promise<SlideInfo | null>,
    searchGenes: (sectionId, query, limit) =>
      call('searchGenes', limit === undefined ? [sectionId, query] : [sectionId, query, limit]) as Promise<
        GeneSummary[]
      >,
    getGeneValues: (sectionId, gene) => call('getGeneValues', [sectionId, gene]) as Promise<GeneValues>,
    getSpotDetails: (sectionId, spotIndex) => call('getSpotDetails', [sectionId, spotIndex]) as Promise<SpotDetails>,
    listClasses: () => call('listClasses', []) as Promise<AnnotationClassInfo[]>,
    createClass: (name, color) => call('createClass', [name, color ?? null]) as Promise<AnnotationClassInfo>,
    renameClass: (id, name) => call('renameClass', [id, name]) as Promise<AnnotationClassInfo[]>,
    recolorClass: (id, color) => call('recolorClass', [id, color]) as Promise<AnnotationClassInfo[]>,
    reorderClasses: (ids) => call('reorderClasses', [ids]) as Promise<AnnotationClassInfo[]>,
    deleteClass: (id) => call('deleteClass', [id]) as Promise<AnnotationClassInfo[]>,
    getAnnotations: (sectionId) => call('getAnnotations', [sectionId]) as Promise<SectionAnnotations>,
    labelSpots: (sectionId, spots, classId) =>
      call('labelSpots', [sectionId, spots, classId]) as Promise<SectionAnnotations>,
    addRegion: (sectionId, polygon, classId) =>
      call('addRegion', [sectionId, polygon, classId]) as Promise<SectionAnnotations>,
    deleteRegion: (sectionId, regionId) => call('deleteRegion', [sectionId, regionId]) as Promise<SectionAnnotations>,
    undo: (sectionId) => call('undo', [sectionId]) as Promise<SectionAnnotations>,
    redo: (sectionId) => call('redo', [sectionId]) as Promise<SectionAnnotations>,
    exportAnnotations: (sectionId, format, path) =>
      call('exportAnnotations', [sectionId, format, path ?? null]) as Promise<AnnotationExport>,
    importAnnotations: (sectionId, format, text) =>
      call('importAnnotations', [sectionId, format, text]) as Promise<AnnotationImportReport>,
    uploadSection: (name, files, options) =>
      call('uploadSection', [name, files, options ?? null]) as Promise<UploadSectionResult>,
    startTraining: (request) => call('startTraining', [request]) as Promise<TrainingStatus>,
    getTrainingStatus: () => call('getTrainingStatus', []) as Promise<TrainingStatus>,
    cancelTraining: () => call('cancelTraining', []) as Promise<TrainingStatus>,
    resumeTraining: (modelId, epochs) => call('resumeTraining', [modelId, epochs ?? null]) as Promise<TrainingStatus>,
    listModels: () => call('listModels', []) as Promise<ModelInfo[]>,
    renameModel: (modelId, name) => call('renameModel', [modelId, name]) as Promise<ModelInfo[]>,
    deleteModel: (modelId) => call('deleteModel', [modelId]) as Promise<ModelInfo[]>,
    exportModel: (modelId, path) => call('exportModel', [modelId, path]) as Promise<{ path: string }>,
    importModel: (path) => call('importModel', [path]) as Promise<ModelInfo>,
    predictSection: (sectionId, request) => call('predictSection', [sectionId, request]) as Promise<SectionPrediction>,
    tileSection: (sectionId, request) => call('tileSection', [sectionId, request]) as Promise<TileResult>,
    findSimilarSpots: (sectionId, spotIndex, request) =>
      call('findSimilarSpots', [sectionId, spotIndex, request]) as Promise<SimilarSpot[]>,
    getHyperbolicMap: (sectionIds, request) =>
      call('getHyperbolicMap', [sectionIds, request]) as Promise<HyperbolicMap>,
    getInferenceStatus: () => call('getInferenceStatus', []) as Promise<InferenceStatus>,
    cancelInference: () => call('cancelInference', []) as Promise<InferenceStatus>,
  };
}

// The renderer's only link to core/: the API contract's types (erased at build time, nothing from core is bundled).
export type {
  OpenPathResult,
  SectionSpots,
  SectionSummary,
  SlideInfo,
  StudioApi,
  StudioApiMethod,
} from '../../core/api/api.js';

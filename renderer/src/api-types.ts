// The renderer's only link to core/: the API contract's types (erased at build time, nothing from core is bundled).
export type {
  AnnotationClassInfo,
  AnnotationExport,
  AnnotationFormat,
  AnnotationImportReport,
  AnnotationRegion,
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
} from '../../core/api/api.js';

// Annotating a section in the viewer: the class palette, the tools (click, brush, lasso, polygon) and their pointer
// handling, undo/redo, import/export. Every change goes through the API, one after another; the section's new
// annotations come back and recolour the spots.

import type OpenSeadragon from 'openseadragon';
import type { Api } from './api-client.js';
import type { AnnotationClassInfo, AnnotationFormat, SectionAnnotations, SectionSpots } from './api-types.js';
import { brushSegment, spotsInRing, type AnnotationTool } from './annotation.js';
import type { SpotGrid } from './spot-grid.js';
import type { SpotOverlay } from './SpotOverlay.js';
import { screenToSlide } from './view-transform.js';

/** What a tool is drawing, in slide pixels. */
export interface Draft {
  readonly kind: 'brush' | 'lasso' | 'polygon';
  readonly points: [number, number][];
}

/** What the tools need of the view they annotate (read when used: these change as the slide loads). */
export interface AnnotationHost {
  readonly api: Api;
  readonly sectionId: () => string;
  readonly overlay: () => SpotOverlay | null;
  readonly grid: () => SpotGrid | null;
  readonly spots: () => SectionSpots | null;
  /** The spot drawn under a point of the viewer (CSS px), or -1. */
  readonly pickAt: (x: number, y: number) => number;
  /** After each change of the annotations. */
  readonly onchange: () => void;
}

function byKey<K, V>(
  classes: readonly AnnotationClassInfo[],
  key: (c: AnnotationClassInfo) => K,
  value: (c: AnnotationClassInfo) => V,
): ReadonlyMap<K, V> {
  return new Map(classes.map((c) => [key(c), value(c)]));
}

/** A brush stroke's spots: plain, not reactive (read once, when the stroke ends). */
function emptyStroke(): Set<number> {
  return new Set();
}

export class AnnotationTools {
  annotating = $state(false);
  classes = $state.raw<AnnotationClassInfo[]>([]);
  /** The class the tools apply; null: erase. */
  activeClass = $state<number | null>(null);
  tool = $state<AnnotationTool>('click');
  brushRadius = $state(16);
  annotations = $state.raw<SectionAnnotations | null>(null);
  busy = $state(false);
  message = $state<string | null>(null);
  /** What a tool is drawing now. */
  draft = $state.raw<Draft | null>(null);
  /** The pointer over the slide in annotate mode (CSS px), for the brush circle and the polygon's next edge. */
  cursor = $state<{ x: number; y: number } | null>(null);
  /** Class colours by name (the label colouring) and classes by id (the regions). */
  readonly classColors: ReadonlyMap<string, string> = $derived(
    byKey(
      this.classes,
      (c) => c.name,
      (c) => c.color,
    ),
  );
  readonly classById: ReadonlyMap<number, AnnotationClassInfo> = $derived(
    byKey(
      this.classes,
      (c) => c.id,
      (c) => c,
    ),
  );

  /** Spots a brush stroke has touched so far. */
  private stroke: Set<number> | null = null;
  /** Annotation calls go one after another, in the order they were made. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly host: AnnotationHost;

  constructor(host: AnnotationHost) {
    this.host = host;
  }

  /** The section's annotations and the project's classes, as first loaded. */
  loaded(annotations: SectionAnnotations, classes: AnnotationClassInfo[]): void {
    this.annotations = annotations;
    this.classes = classes;
    if (this.activeClass === null && classes.length > 0) this.activeClass = classes[0].id;
  }

  /** Brush and lasso take the drag from OpenSeadragon (no panning); the wheel still zooms. The polygon closes on a
   * double click. (Clicks come through `click`: the viewer's owner shares them with selection.) */
  attach(viewer: OpenSeadragon.Viewer): void {
    viewer.addHandler('canvas-press', (event) => {
      if (this.dragTool()) this.startStroke(event.position.x, event.position.y);
    });
    viewer.addHandler('canvas-drag', (event) => {
      if (!this.dragTool()) return;
      event.preventDefaultAction = true;
      this.extendStroke(event.position.x, event.position.y);
    });
    viewer.addHandler('canvas-drag-end', (event) => {
      if (this.dragTool()) event.preventDefaultAction = true;
    });
    viewer.addHandler('canvas-release', () => {
      if (this.dragTool()) this.endStroke();
    });
    viewer.addHandler('canvas-double-click', (event) => {
      if (this.annotating && this.tool === 'polygon') {
        event.preventDefaultAction = true;
        this.closePolygon();
      }
    });
  }

  /** A quick click on the slide in annotate mode (CSS px). */
  click(x: number, y: number): void {
    if (this.tool === 'click') {
      const spot = this.host.pickAt(x, y);
      if (spot >= 0) this.label([spot]);
    } else if (this.tool === 'polygon') {
      const at = this.slideAt(x, y);
      const v = this.host.overlay()?.view;
      if (!at || !v) return;
      const points = this.draft?.kind === 'polygon' ? this.draft.points : [];
      const last = points[points.length - 1];
      // The clicks of a double-click land on the last corner: one corner.
      if (last && Math.hypot(last[0] - at.x, last[1] - at.y) * v.scale < 4) return;
      this.draft = { kind: 'polygon', points: [...points, [at.x, at.y]] };
    }
  }

  cancelDraft(): void {
    this.draft = null;
    this.stroke = null;
  }

  undo(): void {
    this.cancelDraft();
    void this.change(() => this.host.api.undo(this.host.sectionId()));
  }

  redo(): void {
    this.cancelDraft();
    void this.change(() => this.host.api.redo(this.host.sectionId()));
  }

  /** Undo (Ctrl/Cmd+Z), redo (Ctrl/Cmd+Shift+Z, Ctrl/Cmd+Y), cancel a drawing (Escape), close a polygon (Enter). */
  readonly onkeydown = (event: KeyboardEvent): void => {
    if (!this.annotating) return;
    const target = event.target as HTMLElement | null;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const mod = event.ctrlKey || event.metaKey;
    const key = event.key.toLowerCase();
    if (mod && key === 'z') {
      event.preventDefault();
      if (event.shiftKey) this.redo();
      else this.undo();
    } else if (mod && key === 'y') {
      event.preventDefault();
      this.redo();
    } else if (event.key === 'Escape') {
      this.cancelDraft();
    } else if (event.key === 'Enter') {
      this.closePolygon();
    }
  };

  // --- The class palette, import and export ---

  createClass(name: string): void {
    void this.change(async () => {
      const created = await this.host.api.createClass(name);
      this.classes = await this.host.api.listClasses();
      this.activeClass = created.id;
      return this.annotations!;
    });
  }

  renameClass(id: number, name: string): void {
    void this.palette(() => this.host.api.renameClass(id, name), true);
  }

  recolorClass(id: number, color: string): void {
    void this.palette(() => this.host.api.recolorClass(id, color));
  }

  deleteClass(id: number): void {
    void this.palette(() => this.host.api.deleteClass(id), true);
  }

  moveClass(id: number, by: -1 | 1): void {
    const ids = this.classes.map((c) => c.id);
    const k = ids.indexOf(id);
    if (k < 0 || k + by < 0 || k + by >= ids.length) return;
    [ids[k], ids[k + by]] = [ids[k + by], ids[k]];
    void this.palette(() => this.host.api.reorderClasses(ids));
  }

  async exportAs(format: AnnotationFormat): Promise<void> {
    try {
      const result = await this.host.api.exportAnnotations(this.host.sectionId(), format);
      const type = format === 'csv' ? 'text/csv' : 'application/geo+json';
      const url = URL.createObjectURL(new Blob([result.text], { type }));
      const link = document.createElement('a');
      link.href = url;
      link.download = result.fileName;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      this.message = `Exported ${result.fileName}`;
    } catch (error) {
      this.message = error instanceof Error ? error.message : String(error);
    }
  }

  async importFile(file: File): Promise<void> {
    const format: AnnotationFormat = /\.(csv|tsv|txt)$/i.test(file.name) ? 'csv' : 'geojson';
    const text = await file.text();
    let report = '';
    await this.change(
      async () => {
        const result = await this.host.api.importAnnotations(this.host.sectionId(), format, text);
        report = [
          `Imported ${file.name}: ${result.spotsChanged} spots changed, ${result.regionsAdded} regions added`,
          ...(result.classesCreated.length > 0 ? [`new classes: ${result.classesCreated.join(', ')}`] : []),
          ...result.warnings,
        ].join('\n');
        return result.annotations;
      },
      async () => {
        this.classes = await this.host.api.listClasses();
        this.message = report;
      },
    );
  }

  // --- Internals ---

  /** A change through the API, queued behind earlier ones; the new annotations recolour the spots at once. */
  private change(run: () => Promise<SectionAnnotations>, after?: () => Promise<void>): Promise<void> {
    const next = this.queue.then(async () => {
      this.busy = true;
      try {
        this.annotations = await run();
        this.host.onchange();
        this.message = null;
        await after?.();
        // The section list's label counts follow.
        window.dispatchEvent(new Event('delst:sections-changed'));
      } catch (error) {
        this.message = error instanceof Error ? error.message : String(error);
      } finally {
        this.busy = false;
      }
    });
    this.queue = next;
    return next;
  }

  private async palette(run: () => Promise<AnnotationClassInfo[]>, reload = false): Promise<void> {
    await this.change(async () => {
      this.classes = await run();
      if (!this.classes.some((c) => c.id === this.activeClass)) this.activeClass = this.classes[0]?.id ?? null;
      return reload ? this.host.api.getAnnotations(this.host.sectionId()) : this.annotations!;
    });
  }

  private label(indices: number[]): void {
    if (indices.length === 0) return;
    const cls = this.activeClass;
    void this.change(() => this.host.api.labelSpots(this.host.sectionId(), indices, cls));
  }

  private dragTool(): boolean {
    return this.annotating && (this.tool === 'brush' || this.tool === 'lasso');
  }

  private readonly accept = (spot: number): boolean => this.host.overlay()?.isShown(spot) ?? false;

  private slideAt(x: number, y: number): { x: number; y: number } | null {
    const v = this.host.overlay()?.view;
    return v ? screenToSlide(v, x, y) : null;
  }

  /** Brush reach in slide pixels: the brush radius plus a spot's radius (a spot it touches counts). */
  private brushReach(): number {
    const overlay = this.host.overlay();
    const v = overlay?.view;
    if (!v || !overlay) return 0;
    return (this.brushRadius + overlay.radius(v)) / v.scale;
  }

  private startStroke(x: number, y: number): void {
    const at = this.slideAt(x, y);
    const grid = this.host.grid();
    if (!at || !grid) return;
    if (this.tool === 'brush') {
      this.stroke = emptyStroke();
      brushSegment(grid, at, at, this.brushReach(), this.accept, this.stroke);
    }
    this.draft = { kind: this.tool === 'brush' ? 'brush' : 'lasso', points: [[at.x, at.y]] };
  }

  private extendStroke(x: number, y: number): void {
    const at = this.slideAt(x, y);
    const draft = this.draft;
    if (!at || !draft || draft.kind === 'polygon') return;
    this.cursor = { x, y };
    const [lx, ly] = draft.points[draft.points.length - 1];
    const grid = this.host.grid();
    if (draft.kind === 'brush' && grid && this.stroke)
      brushSegment(grid, { x: lx, y: ly }, at, this.brushReach(), this.accept, this.stroke);
    this.draft = { kind: draft.kind, points: [...draft.points, [at.x, at.y]] };
  }

  private endStroke(): void {
    const draft = this.draft;
    if (!draft || draft.kind === 'polygon') return;
    const spots = this.host.spots();
    if (draft.kind === 'brush' && this.stroke) this.label([...this.stroke]);
    else if (draft.kind === 'lasso' && spots) this.label(spotsInRing(spots.x, spots.y, draft.points, this.accept));
    this.stroke = null;
    this.draft = null;
  }

  private closePolygon(): void {
    if (this.draft?.kind !== 'polygon') return;
    const points = this.draft.points;
    this.draft = null;
    if (points.length < 3) {
      this.message = 'A region needs three corners or more.';
      return;
    }
    const cls = this.activeClass;
    void this.change(() => this.host.api.addRegion(this.host.sectionId(), points, cls));
  }
}

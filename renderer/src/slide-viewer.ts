// The OpenSeadragon viewer of a slide: its creation, the tile source it reads, and linked views (Compare).

import OpenSeadragon from 'openseadragon';
import type { SlideInfo } from './api-types.js';
import type { Api } from './api-client.js';
import type { LinkedView } from './linked-view.js';

/** A DeepZoom pyramid (level max = full size, each level below halves it) served by the shell's tile route. */
export function tileSource(api: Api, slide: SlideInfo) {
  const source: OpenSeadragon.TileSourceOptions & { getTileUrl(level: number, x: number, y: number): string } = {
    width: slide.width,
    height: slide.height,
    tileSize: slide.tileSize,
    tileOverlap: slide.overlap,
    getTileUrl: (level, x, y) => api.tileUrl(slide.key, level, x, y, slide.format),
  };
  return source;
}

/** A viewer of a slide in `element`, with the studio's navigation settings. */
export function createViewer(
  element: HTMLElement,
  api: Api,
  slide: SlideInfo,
  drawer: 'canvas' | 'webgl' | null,
): OpenSeadragon.Viewer {
  return OpenSeadragon({
    element,
    tileSources: tileSource(api, slide),
    ...(drawer ? { drawer } : {}),
    crossOriginPolicy: api.mode === 'electron' ? 'Anonymous' : false,
    showNavigationControl: false,
    animationTime: 0.5,
    visibilityRatio: 0.5,
    minZoomImageRatio: 0.6,
    maxZoomPixelRatio: 4,
    preserveImageSizeOnResize: true,
    gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
  });
}

/** The viewport as fractions of the image (see linked-view.ts), or null before the slide opened. */
export function relativeView(v: OpenSeadragon.Viewer, from: string): LinkedView | null {
  const image = v.world.getItemAt(0);
  if (!image) return null;
  const size = image.getContentSize();
  const centre = v.viewport.getCenter(true);
  // Viewport coordinates: the image spans x 0..1 and y 0..height/width.
  return { from, cx: centre.x, cy: (centre.y * size.x) / size.y, zoom: v.viewport.getZoom(true) };
}

/** Shows another view's view (at once, no animation); returns where OpenSeadragon put it (constraints may round
 * it), or null before the slide opened. */
export function applyLinkedView(v: OpenSeadragon.Viewer, target: LinkedView, from: string): LinkedView | null {
  const image = v.world.getItemAt(0);
  if (!image) return null;
  const size = image.getContentSize();
  v.viewport.zoomTo(target.zoom, undefined, true);
  v.viewport.panTo(new OpenSeadragon.Point(target.cx, (target.cy * size.y) / size.x), true);
  return relativeView(v, from);
}

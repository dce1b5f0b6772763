// No telemetry, no update check, no remote font or script: the built renderer bundle and the built core, server,
// Electron shell and CLI are scanned for remote URLs. Each one found must be a known inert string (an XML namespace,
// a JSON-LD identifier, a link in an error message), and none may stand where something is loaded (fetch, import,
// <link>/<script> src, CSS url() or @import, WebSocket, EventSource, sendBeacon, XHR, http(s).get/request).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../core/resources.js';

const root = packageRoot();
const dist = join(root, 'dist');
const renderer = join(dist, 'renderer');
const skipReason = existsSync(join(renderer, 'index.html')) ? null : 'the app is not built (run npm run build)';
if (skipReason) console.log(`offline scan skipped: ${skipReason}`);

/** Remote URLs that appear in the bundles without ever being requested, and why. */
const INERT: readonly [prefix: string, why: string][] = [
  ['http://www.w3.org/', 'XML/SVG/XHTML namespaces'],
  ['https://svelte.dev/e/', "links in Svelte's error messages"],
  ['https://openseadragon.github.io/examples/', 'a link in an OpenSeadragon error message'],
  ['http://schemas.microsoft.com/deepzoom/2008', 'the DeepZoom XML namespace'],
  ['http://iiif.io/api/image', 'IIIF JSON-LD context identifiers OpenSeadragon compares against'],
  ['https://iiif.io/api/image', 'IIIF profile identifiers OpenSeadragon compares against'],
  ['http://library.stanford.edu/iiif/image-api', 'IIIF 1.x identifiers OpenSeadragon compares against'],
  // OpenSeadragon's OsmTileSource; the app builds only DeepZoom sources from its own tile route (the offline e2e
  // test records that no such request is made).
  ['http://tile.openstreetmap.org/', "OpenSeadragon's OpenStreetMap tile source, never used"],
];

/** Where a URL in code means something is loaded from it. */
const LOADING_CONTEXTS: readonly RegExp[] = [
  /\bfetch\(\s*[`'"]$/,
  /\bimport\(\s*[`'"]$/,
  /\bfrom\s*[`'"]$/,
  /\bimportScripts\(\s*[`'"]$/,
  /\burl\(\s*[`'"]?$/,
  /@import\s+[`'"]?$/,
  /<(link|script|img|iframe|source|video|audio)\b[^>]*\b(href|src)\s*=\s*[`'"]?$/i,
  /\bnew\s+(WebSocket|EventSource|Worker|SharedWorker)\(\s*[`'"]$/,
  /\bsendBeacon\(\s*[`'"]$/,
  /\.open\(\s*[`'"][A-Z]+[`'"]\s*,\s*[`'"]$/,
  /\bhttps?\.(get|request)\(\s*[`'"]$/,
  /\bloadURL\(\s*[`'"]$/,
];

const REMOTE_URL = /\b(?:https?|wss?):\/\/[^\s"'`)<>\\]+/g;
const LOCAL_HOST = /^(?:https?|wss?):\/\/(?:127\.0\.0\.1|localhost|\[::1\])(?:[:/]|$)/;

/** Built files to scan: the renderer bundle and everything compiled from our own code. */
function builtFiles(): string[] {
  const folders = ['renderer', 'core', 'server', 'electron', 'cli'].map((f) => join(dist, f));
  const files = [join(dist, 'launch.js')];
  for (const folder of folders.filter((f) => existsSync(f))) {
    for (const entry of readdirSync(folder, { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && /\.(m?js|cjs|css|html)$/.test(entry.name)) files.push(join(entry.parentPath, entry.name));
    }
  }
  return files;
}

interface Found {
  readonly file: string;
  readonly url: string;
  readonly before: string;
}

function remoteUrls(files: readonly string[]): Found[] {
  const found: Found[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(REMOTE_URL)) {
      if (LOCAL_HOST.test(match[0])) continue;
      found.push({
        file: relative(root, file),
        url: match[0],
        before: text.slice(Math.max(0, match.index - 80), match.index),
      });
    }
  }
  return found;
}

describe.skipIf(skipReason !== null)('offline: no remote URL in the built app', () => {
  const files = skipReason ? [] : builtFiles();
  const found = skipReason ? [] : remoteUrls(files);

  it('scans the renderer bundle and the compiled core, server, Electron shell and CLI', () => {
    expect(files.some((f) => f.startsWith(join(renderer, 'assets')) && f.endsWith('.js'))).toBe(true);
    expect(files).toContain(join(dist, 'core', 'api', 'studio.js'));
    expect(files).toContain(join(dist, 'electron', 'main.js'));
    // The scan sees URLs where there are some (the bundle carries SVG namespaces at least).
    expect(found.length).toBeGreaterThan(0);
  });

  it('finds only known inert remote URLs', () => {
    const unknown = found.filter(({ url }) => !INERT.some(([prefix]) => url.startsWith(prefix)));
    expect(unknown.map(({ file, url }) => `${file}: ${url}`)).toEqual([]);
  });

  it('loads nothing from a remote URL (fetch, import, link, script, CSS url(), sockets, beacons)', () => {
    const loading = found.filter(({ before }) => LOADING_CONTEXTS.some((context) => context.test(before)));
    expect(loading.map(({ file, url, before }) => `${file}: ...${before.slice(-40)}${url}`)).toEqual([]);
  });

  it('has no remote URL at all in the page and its styles (no remote fonts)', () => {
    const page = found.filter(({ file }) => /\.(html|css)$/.test(file));
    expect(page.map(({ file, url }) => `${file}: ${url}`)).toEqual([]);
    for (const file of files.filter((f) => f.endsWith('.css'))) {
      for (const [, source] of readFileSync(file, 'utf8').matchAll(/@font-face\s*{[^}]*src:\s*([^;}]*)/g)) {
        expect(source, file).not.toMatch(/\/\//);
      }
    }
  });

  it('has no telemetry, crash upload or update check', () => {
    const pattern =
      /\b(autoUpdater|electron-updater|update-electron-app|crashReporter|@sentry|google-analytics|googletagmanager|gtag\(|mixpanel|posthog|segment\.io|amplitude\.com)\b/i;
    const hits = files.flatMap((file) => {
      const match = pattern.exec(readFileSync(file, 'utf8'));
      return match ? [`${relative(root, file)}: ${match[0]}`] : [];
    });
    expect(hits).toEqual([]);
  });
});

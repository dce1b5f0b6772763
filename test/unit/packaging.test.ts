// Packaging smoke test: `electron-builder --linux dir` with electron-builder.yml, offline (a stand-in Electron from
// test/fixtures/electron-dist, the Electron version given), then the output tree: the asar holds the app, native and
// wasm files are unpacked, and the paths the app computes when packaged point at files that exist.

import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unpackedPath } from '../../core/resources.js';

const root = resolve(import.meta.dirname, '../..');
const require = createRequire(import.meta.url);

type Asar = typeof import('@electron/asar');

/** electron-builder's own asar reader (a dependency of electron-builder, not of the app); null where not installed. */
function loadAsar(): Asar | null {
  try {
    return require('@electron/asar') as Asar;
  } catch {
    return null;
  }
}

const asar = loadAsar();
const built = existsSync(join(root, 'dist/electron/main.js')) && existsSync(join(root, 'dist/renderer/index.html'));

describe('unpackedPath', () => {
  it('moves a path inside app.asar to app.asar.unpacked, with either separator', () => {
    expect(unpackedPath('/opt/DELST Studio/resources/app.asar/node_modules/x/a.wasm')).toBe(
      '/opt/DELST Studio/resources/app.asar.unpacked/node_modules/x/a.wasm',
    );
    expect(unpackedPath('C:\\Apps\\DELST\\resources\\app.asar\\resources\\demo')).toBe(
      'C:\\Apps\\DELST\\resources\\app.asar.unpacked\\resources\\demo',
    );
    expect(unpackedPath('/opt/app/resources/app.asar')).toBe('/opt/app/resources/app.asar.unpacked');
  });

  it('leaves other paths alone, including names that only start or end like app.asar', () => {
    for (const path of [
      '/work/main/node_modules/x/a.wasm',
      '/opt/app/resources/app.asar.unpacked/x',
      '/opt/my-app.asar/x',
      '/opt/app.asarx/y',
    ]) {
      expect(unpackedPath(path)).toBe(path);
    }
  });
});

/** Files under `folder`, as forward-slash paths relative to it. */
function filesUnder(folder: string): string[] {
  return readdirSync(folder, { recursive: true, encoding: 'utf8' })
    .filter((name) => statSync(join(folder, name)).isFile())
    .map((name) => name.split(sep).join('/'));
}

/** What the app computes in the packaged tree; written by a child Node process run from the extracted asar. */
interface PackagedPaths {
  demo: string;
  wasmDist: string;
  wasmFactory: string;
}

// Runs from the extracted app folder (which Node can read, unlike the archive): imports the app's own modules there,
// so it also fails if a runtime dependency of the core, the server or the launcher was left out of the package.
const PROBE = `
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const [app, out] = process.argv.slice(2);
const load = (file) => import(pathToFileURL(join(app, file)).href);
const { demoPath, unpackedPath } = await load('dist/core/resources.js');
const { wasmDistFolder } = await load('dist/core/engine/backend.js');
await load('dist/core/api/studio.js');
await load('dist/server/browser-server.js');
await load('dist/launch.js');
// The factory script backend.ts hands the wasm worker threads, resolved as it resolves it.
const fromBackend = createRequire(join(app, 'dist/core/engine/backend.js'));
const factory = fromBackend.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js');
writeFileSync(out, JSON.stringify({ demo: demoPath(), wasmDist: wasmDistFolder(), wasmFactory: unpackedPath(factory) }));
`;

const skipReason = !built
  ? 'dist/ is not built (run npm run build)'
  : !asar
    ? '@electron/asar is not installed'
    : process.platform !== 'linux'
      ? 'the offline smoke test builds --linux dir on Linux (dawn.node is chosen by the building platform)'
      : null;

describe.skipIf(skipReason !== null)(
  `electron-builder --linux dir${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    let work = '';
    let resources = '';
    let archive = '';
    let entries = new Set<string>();
    let builderLog = '';

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'delst-packaging-'));
      const electronVersion = (
        JSON.parse(readFileSync(require.resolve('electron/package.json'), 'utf8')) as {
          version: string;
        }
      ).version;
      const args = [
        require.resolve('electron-builder/cli.js'),
        '--linux',
        'dir',
        '--publish',
        'never',
        '-c.electronDist=test/fixtures/electron-dist',
        `-c.electronVersion=${electronVersion}`,
        `-c.directories.output=${join(work, 'out')}`,
      ];
      // Without a network where the machine allows it (unshare -rn: a user and network namespace), so a download
      // electron-builder would try fails the test instead of passing here and failing on an offline CI runner.
      const isolated = spawnSync('unshare', ['-rn', 'true']).status === 0;
      const [command, commandArgs] = isolated
        ? ['unshare', ['-rn', process.execPath, ...args]]
        : [process.execPath, args];
      // electron-builder prints nothing but errors when it sees VITEST in its environment.
      const env = { ...process.env };
      delete env.VITEST;
      const result = await promisify(execFile)(command, commandArgs, { cwd: root, env, maxBuffer: 16 << 20 });
      builderLog = result.stdout + result.stderr;
      resources = join(work, 'out', 'linux-unpacked', 'resources');
      archive = join(resources, 'app.asar');
      entries = new Set(
        asar!.listPackage(archive, { isPack: false }).map((entry) => entry.slice(1).split(sep).join('/')),
      );
    }, 240_000);

    afterAll(async () => {
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('builds the app folder from the stand-in Electron without downloading', () => {
      expect(builderLog).toContain('using custom unpacked Electron distribution');
      expect(builderLog).not.toMatch(/download/i);
      expect(existsSync(join(work, 'out', 'linux-unpacked', 'delst-studio'))).toBe(true);
    });

    it('flips the Electron fuses of electron-builder.yml in the packaged executable', async () => {
      // The stand-in carries a stock Electron fuse wire (RunAsNode, NODE_OPTIONS and --inspect on, asar checks off).
      const { getCurrentFuseWire, FuseV1Options } = await import('@electron/fuses');
      // A fuse is the character '0' (off) or '1' (on) in the wire.
      const FuseState = { DISABLE: '0'.charCodeAt(0), ENABLE: '1'.charCodeAt(0) };
      const wire = await getCurrentFuseWire(join(work, 'out', 'linux-unpacked', 'delst-studio'));
      expect(wire[FuseV1Options.RunAsNode]).toBe(FuseState.DISABLE);
      expect(wire[FuseV1Options.EnableNodeOptionsEnvironmentVariable]).toBe(FuseState.DISABLE);
      expect(wire[FuseV1Options.EnableNodeCliInspectArguments]).toBe(FuseState.DISABLE);
      expect(wire[FuseV1Options.OnlyLoadAppFromAsar]).toBe(FuseState.ENABLE);
      expect(wire[FuseV1Options.EnableEmbeddedAsarIntegrityValidation]).toBe(FuseState.ENABLE);
      expect(wire[FuseV1Options.GrantFileProtocolExtraPrivileges]).toBe(FuseState.DISABLE);
    });

    it('puts the main process, preload, renderer, package.json, base model and demo in the asar', () => {
      const expected = [
        'package.json',
        ...filesUnder(join(root, 'dist/electron')).map((f) => `dist/electron/${f}`),
        ...filesUnder(join(root, 'dist/renderer')).map((f) => `dist/renderer/${f}`),
        ...filesUnder(join(root, 'resources/models/delst-base')).map((f) => `resources/models/delst-base/${f}`),
        ...filesUnder(join(root, 'resources/demo')).map((f) => `resources/demo/${f}`),
      ].filter((f) => !f.endsWith('.map'));
      expect(expected).toContain('dist/electron/main.js');
      expect(expected).toContain('dist/renderer/index.html');
      expect(expected.filter((f) => !entries.has(f))).toEqual([]);
      const pkg = JSON.parse(asar!.extractFile(archive, 'package.json').toString('utf8')) as { main: string };
      expect(entries.has(pkg.main)).toBe(true);
    });

    it('leaves out developer tools, source maps and build tools', () => {
      const shipped = [...entries];
      expect(shipped.filter((f) => /^(dist\/(bench|scripts)|test|bench|scripts|core|renderer)\//.test(f))).toEqual([]);
      expect(shipped.filter((f) => f.endsWith('.map'))).toEqual([]);
      // Not every devDependency: some (@types/node) are also dependencies of runtime packages.
      const tools = [
        'electron',
        'electron-builder',
        'vite',
        'vitest',
        'typescript',
        'svelte',
        'eslint',
        'playwright-core',
      ];
      expect(tools.filter((name) => entries.has(`node_modules/${name}/package.json`))).toEqual([]);
    });

    it('unpacks every native library, and ships only this platform’s dawn.node', () => {
      const natives = [...entries].filter((f) => /\.(node|dll|dylib|so(\.\d+)*)$/.test(f));
      expect(natives.some((f) => f.startsWith('node_modules/@img/sharp-'))).toBe(true);
      expect(natives.some((f) => f.startsWith('node_modules/@libsql/'))).toBe(true);
      expect(natives.filter((f) => asar!.statFile(archive, f).unpacked !== true)).toEqual([]);
      expect(natives.filter((f) => !existsSync(join(resources, 'app.asar.unpacked', f)))).toEqual([]);
      const dawn = natives.filter((f) => f.startsWith('node_modules/webgpu/'));
      expect(dawn).toEqual([`node_modules/webgpu/dist/${process.platform}-${process.arch}/dawn.node`]);
    });

    it('ships the optional libtensorflow backends exactly where they installed', () => {
      for (const pkg of ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
        const installed = existsSync(join(root, 'node_modules', pkg, 'package.json'));
        expect(entries.has(`node_modules/${pkg}/package.json`), pkg).toBe(installed);
      }
    });

    it('has the demo and the wasm files unpacked where the packaged app looks for them', async () => {
      // The layout of an installed app, with the archive extracted in its place (Node cannot read an asar).
      const app = join(work, 'layout', 'resources', 'app.asar');
      await mkdir(join(work, 'layout', 'resources'), { recursive: true });
      asar!.extractAll(archive, app);
      await symlink(join(resources, 'app.asar.unpacked'), join(work, 'layout', 'resources', 'app.asar.unpacked'));
      await writeFile(join(work, 'probe.mjs'), PROBE);
      const out = join(work, 'paths.json');
      await promisify(execFile)(process.execPath, [join(work, 'probe.mjs'), app, out], { maxBuffer: 16 << 20 });
      const paths = JSON.parse(readFileSync(out, 'utf8')) as PackagedPaths;

      const unpacked = `${app}.unpacked${sep}`;
      for (const path of Object.values(paths)) expect(path.startsWith(unpacked), path).toBe(true);
      for (const file of filesUnder(join(root, 'resources/demo'))) {
        expect(existsSync(join(paths.demo, file)), file).toBe(true);
      }
      for (const file of [
        'tfjs-backend-wasm.wasm',
        'tfjs-backend-wasm-simd.wasm',
        'tfjs-backend-wasm-threaded-simd.wasm',
      ]) {
        expect(existsSync(paths.wasmDist + file), file).toBe(true);
      }
      expect(existsSync(paths.wasmFactory)).toBe(true);
      expect(relative(unpacked, paths.wasmFactory)).toMatch(/^node_modules\/@tensorflow\/tfjs-backend-wasm\//);
    }, 120_000);
  },
);

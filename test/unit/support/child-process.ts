// Child processes of the tests: plain `node` children that may import this repo's TypeScript (through loader hooks),
// their output read line by line, and killed with SIGKILL where a test needs a crash.

import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(import.meta.dirname, '../../..');

/** `import(...)` argument of a module of this repo, for the source of a child script. */
export const moduleUrl = (relative: string) => JSON.stringify(pathToFileURL(join(root, relative)).href);

/** ESM loader hooks that let a plain `node` child import this repo's .ts files (via the TypeScript compiler). */
const HOOKS = `
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from ${moduleUrl('node_modules/typescript/lib/typescript.js')};
export async function resolve(specifier, context, next) {
  if (context.parentURL?.endsWith('.ts') && specifier.startsWith('.') && specifier.endsWith('.js')) {
    const url = new URL(specifier.replace(/\\.js$/, '.ts'), context.parentURL);
    if (existsSync(fileURLToPath(url))) return { url: url.href, shortCircuit: true };
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const source = readFileSync(fileURLToPath(url), 'utf8');
  const options = { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 };
  return { format: 'module', shortCircuit: true, source: ts.transpileModule(source, { compilerOptions: options }).outputText };
}`;

/** Writes the hooks and the module that registers them into `dir`; returns the latter (for `node --import`). */
export async function writeLoaderHooks(dir: string): Promise<string> {
  const file = join(dir, 'hooks.mjs');
  const register = join(dir, 'register.mjs');
  await writeFile(file, HOOKS);
  await writeFile(
    register,
    `import { register } from 'node:module'; register(${JSON.stringify(pathToFileURL(file).href)});`,
  );
  return register;
}

export interface Child {
  readonly pid: number;
  /** Complete lines printed so far. */
  readonly lines: string[];
  /** Resolves with the first line (from `from` on) that passes `test`; rejects if the child ends first. */
  line(test: (line: string) => boolean, from?: number): Promise<string>;
  kill(): void;
  /** The signal that ended it (null: it exited by itself, with code 0). */
  readonly exited: Promise<NodeJS.Signals | null>;
}

/** Runs `node script ...args`; `hooks` (from writeLoaderHooks): with the loader hooks, so that it may import .ts files. */
export function startChild(script: string, args: string[], { hooks }: { hooks: string | null }): Child {
  const node = hooks ? ['--import', hooks, script, ...args] : [script, ...args];
  const child = spawn(process.execPath, node, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  let ended = false;
  const waiting = new Set<() => void>();
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    waiting.forEach((wake) => wake());
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((done, fail) =>
    child.on('exit', (code, signal) => {
      ended = true;
      waiting.forEach((wake) => wake());
      if (code) fail(new Error(`child failed (exit ${code}): ${stderr}`));
      else done(signal);
    }),
  );
  exited.catch(() => undefined); // reported through line() or by whoever awaits it
  const line = (test: (line: string) => boolean, from = 0) =>
    new Promise<string>((done, fail) => {
      const check = () => {
        const found = lines.slice(from).find(test);
        if (found !== undefined) {
          waiting.delete(check);
          done(found);
        } else if (ended) {
          waiting.delete(check);
          fail(new Error(`child ended before printing the expected line: ${stderr || lines.slice(-3).join(' | ')}`));
        }
      };
      waiting.add(check);
      check();
    });
  return { pid: child.pid!, lines, line, kill: () => child.kill('SIGKILL'), exited };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

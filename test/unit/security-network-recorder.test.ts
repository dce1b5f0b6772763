// The network recorder of the offline e2e test (test/e2e/network-recorder.mjs) must see what it claims to see, or
// an empty log would prove nothing: a child process loaded with it tries every kind of outgoing connection (to
// documentation-only addresses, TEST-NET, which lead nowhere), in its main thread and in a worker.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../core/resources.js';

const recorder = join(packageRoot(), 'test', 'e2e', 'network-recorder.mjs');

const WORKER = `
import net from 'node:net';
const socket = net.connect({ host: '192.0.2.3', port: 9 });
socket.on('error', () => undefined);
setTimeout(() => socket.destroy(), 50);
`;

const MAIN = `
import dgram from 'node:dgram';
import dns from 'node:dns';
import https from 'node:https';
import net from 'node:net';
import { Worker } from 'node:worker_threads';

const quiet = (emitter) => emitter.on('error', () => undefined);
const server = net.createServer((socket) => quiet(socket)).listen(0, '127.0.0.1');
await new Promise((done) => server.once('listening', done));
const local = net.connect(server.address().port, '127.0.0.1');
quiet(local);
const far = quiet(net.connect({ host: '192.0.2.1', port: 9 }));
setTimeout(() => far.destroy(), 50);
dns.lookup('example.invalid', () => undefined);
await dns.promises.lookup('example.invalid').catch(() => undefined);
fetch('http://192.0.2.2:81/', { signal: AbortSignal.timeout(100) }).catch(() => undefined);
quiet(https.request('https://198.51.100.1/')).end();
const udp = dgram.createSocket('udp4');
quiet(udp);
udp.send('x', 53, '203.0.113.1', () => udp.close());
await new Promise((done) => new Worker(new URL('./worker.mjs', import.meta.url)).once('exit', done));
await new Promise((done) => setTimeout(done, 400)); // the socket sampler runs every 100 ms
local.destroy();
server.close();
process.exit(0);
`;

interface Attempt {
  kind: string;
  host: string | null;
  port: number | string | null;
  thread: string;
}

describe('network recorder (offline e2e)', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'delst-recorder-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('logs sockets, TLS, HTTP, fetch, DNS and UDP of the main thread and of worker threads', async () => {
    writeFileSync(join(scratch, 'main.mjs'), MAIN);
    writeFileSync(join(scratch, 'worker.mjs'), WORKER);
    const log = join(scratch, 'network.jsonl');
    await promisify(execFile)(process.execPath, ['--import', pathToFileURL(recorder).href, join(scratch, 'main.mjs')], {
      env: { ...process.env, DELST_NETWORK_LOG: log },
      timeout: 20_000,
    });
    const attempts = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Attempt);
    const seen = (kind: string, host: string, thread = 'main') =>
      attempts.some((a) => a.kind === kind && a.host === host && a.thread.startsWith(thread));

    expect(attempts.filter((a) => a.kind === 'loaded').map((a) => a.thread.split(' ')[0])).toEqual(['main', 'worker']);
    expect(seen('net.connect', '127.0.0.1')).toBe(true);
    expect(seen('net.connect', '192.0.2.1')).toBe(true);
    expect(seen('dns.lookup', 'example.invalid')).toBe(true);
    expect(attempts.filter((a) => a.kind === 'dns.lookup' && a.host === 'example.invalid')).toHaveLength(2);
    expect(seen('fetch', '192.0.2.2')).toBe(true);
    expect(seen('https.request', '198.51.100.1')).toBe(true);
    expect(seen('tls.connect', '198.51.100.1')).toBe(true);
    expect(seen('dgram.send', '203.0.113.1')).toBe(true);
    expect(seen('net.connect', '192.0.2.3', 'worker')).toBe(true);
    // The /proc sampler sees the open local connection, whoever opened it.
    expect(seen('proc.tcp', '127.0.0.1')).toBe(true);
  });
});

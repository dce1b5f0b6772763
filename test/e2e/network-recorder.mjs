// Records every network destination a Node process tries to reach, for the offline test: load it first with
// `node --import <this file's URL> ...` and set DELST_NETWORK_LOG to a file; each attempt appends one JSON line
// `{kind, host, port, thread}`. Plain JavaScript because it runs before anything is compiled or loaded.
//
// Caught: net sockets (net.connect, http(s), undici's fetch, tls: all go through net.Socket.prototype.connect),
// tls.connect, http(s).request/get, fetch, DNS lookups and queries, UDP (dgram); the same patches are loaded into
// our own worker threads (training), and every 100 ms the process's open sockets are read from /proc (Linux), which
// also catches sockets opened by native code (libtensorflow, libvips) or by threads the patches do not reach.

import dgram from 'node:dgram';
import dns from 'node:dns';
import { appendFileSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import workerThreads from 'node:worker_threads';

const LOG = process.env.DELST_NETWORK_LOG;
if (!LOG) throw new Error('network-recorder: set DELST_NETWORK_LOG to the file to log to');
const thread = workerThreads.isMainThread ? 'main' : `worker ${workerThreads.threadId}`;

/** Appends one attempt (synchronously: nothing is lost when the process is killed). */
function record(kind, host, port = null) {
  appendFileSync(LOG, JSON.stringify({ kind, host: host ?? null, port: port ?? null, thread }) + '\n');
}

/** Host and port of net.Socket#connect's many call forms (options, [options, cb] from net.connect, port/host). */
function connectTarget(args) {
  let [first, second] = args;
  if (Array.isArray(first)) [first] = first;
  if (first && typeof first === 'object') {
    return first.path ? ['unix:' + first.path, null] : [first.host ?? 'localhost', first.port ?? null];
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return ['unix:' + first, null];
  return [typeof second === 'string' ? second : 'localhost', first ?? null];
}

function patchNet() {
  const connect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (...args) {
    record('net.connect', ...connectTarget(args));
    return connect.apply(this, args);
  };
  const tlsConnect = tls.connect;
  tls.connect = function (...args) {
    const options = args.find((a) => a && typeof a === 'object') ?? {};
    const port = typeof args[0] === 'number' ? args[0] : (options.port ?? null);
    record('tls.connect', options.host ?? options.servername ?? (typeof args[1] === 'string' ? args[1] : null), port);
    return tlsConnect.apply(this, args);
  };
}

/** http(s).request/get: the URL or options' host. */
function patchHttp(module, scheme) {
  for (const name of ['request', 'get']) {
    const original = module[name];
    module[name] = function (...args) {
      const [first] = args;
      const url = typeof first === 'string' || first instanceof URL ? new URL(first) : null;
      const options = url ? null : (first ?? {});
      record(
        `${scheme}.${name}`,
        url ? url.hostname : (options.hostname ?? options.host ?? 'localhost'),
        url ? url.port || null : (options.port ?? null),
      );
      return original.apply(this, args);
    };
  }
}

function patchFetch() {
  const original = globalThis.fetch;
  if (typeof original !== 'function') return;
  globalThis.fetch = function (input, init) {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    record('fetch', url.hostname, url.port || null);
    return original.call(this, input, init);
  };
}

function patchDns() {
  const names = ['lookup', 'lookupService', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCname'];
  for (const target of [dns, dns.promises]) {
    for (const name of names) {
      const original = target[name];
      if (typeof original !== 'function') continue;
      target[name] = function (hostname, ...rest) {
        record(`dns.${name}`, String(hostname));
        return original.call(this, hostname, ...rest);
      };
    }
  }
}

function patchDgram() {
  const { send, connect } = dgram.Socket.prototype;
  dgram.Socket.prototype.send = function (...args) {
    // send(msg, [offset, length,] port, address, cb): the port is the first number after the message's own.
    const numbers = args.filter((a) => typeof a === 'number');
    const port = args.length >= 5 ? numbers[2] : numbers[0];
    record('dgram.send', args.find((a, i) => i > 0 && typeof a === 'string') ?? 'localhost', port ?? null);
    return send.apply(this, args);
  };
  dgram.Socket.prototype.connect = function (port, address, ...rest) {
    record('dgram.connect', typeof address === 'string' ? address : 'localhost', port);
    return connect.call(this, port, address, ...rest);
  };
}

/** Our own worker scripts start by loading this recorder too (Node does not run --import in workers). */
function patchWorkers() {
  const Original = workerThreads.Worker;
  const self = import.meta.url;
  class RecordedWorker extends Original {
    constructor(script, options = {}) {
      const file = script instanceof URL ? (script.protocol === 'file:' ? fileURLToPath(script) : null) : script;
      const ours = typeof file === 'string' && !options.eval && !file.includes('node_modules');
      if (!ours) {
        super(script, options);
        return;
      }
      const body = `await import(${JSON.stringify(self)}); await import(${JSON.stringify(pathToFileURL(file).href)});`;
      super(new URL(`data:text/javascript,${encodeURIComponent(body)}`), options);
    }
  }
  workerThreads.Worker = RecordedWorker;
}

// --- Sockets from /proc: every socket of the process, whoever opened it ---

const seen = new Set();

/** `0100007F:1F90` (IPv4) or 32 hex digits:port (IPv6), as /proc/net/* writes them, to [address, port]. */
function procAddress(text) {
  const [hex, portHex] = text.split(':');
  const port = parseInt(portHex, 16);
  const words = hex.match(/.{8}/g).map((w) => w.match(/../g).reverse().join(''));
  if (hex.length === 8)
    return [
      words[0]
        .match(/../g)
        .map((b) => parseInt(b, 16))
        .join('.'),
      port,
    ];
  // The URL parser writes an IPv6 address in its short form (::1, ::ffff:7f00:1).
  const full = words.join('').match(/.{4}/g).join(':');
  return [new URL(`http://[${full}]`).hostname.slice(1, -1), port];
}

function sampleSockets() {
  let inodes;
  try {
    inodes = new Set(
      readdirSync('/proc/self/fd')
        .map((fd) => {
          try {
            return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
          } catch {
            return undefined;
          }
        })
        .filter(Boolean),
    );
  } catch {
    return; // not Linux
  }
  for (const table of ['tcp', 'tcp6', 'udp', 'udp6']) {
    let lines;
    try {
      lines = readFileSync(`/proc/self/net/${table}`, 'utf8').trim().split('\n').slice(1);
    } catch {
      continue;
    }
    for (const line of lines) {
      const fields = line.trim().split(/\s+/);
      const [remote, state, inode] = [fields[2], fields[3], fields[9]];
      if (!inodes.has(inode) || state === '0A') continue; // not ours, or listening
      const [host, port] = procAddress(remote);
      if (port === 0) continue; // not connected
      const key = `${inode} ${host} ${port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      record(`proc.${table}`, host, port);
    }
  }
}

patchNet();
patchHttp(http, 'http');
patchHttp(https, 'https');
patchFetch();
patchDns();
patchDgram();
patchWorkers();
syncBuiltinESMExports();
if (workerThreads.isMainThread) {
  setInterval(sampleSockets, 100).unref();
  process.on('exit', sampleSockets);
}
record('loaded', null);

// A minimal NumPy .npy writer (format version 1.0, little-endian float32, C order), for per-spot embeddings that
// Python reads with numpy.load. Files are written atomically: a temp file beside the target, fsynced, renamed over.

import os from 'node:os';
import { writeFileAtomic } from '../atomic-write.js';

// The CLI writes its CSV files with the same atomic write.
export { writeFileAtomic };

const MAGIC = Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** numpy pads the header so that the data starts on a multiple of 64 bytes. */
const ALIGN = 64;

/** The bytes of an .npy file holding `data` as a float32 array of `shape` (C order). */
export function encodeNpy(data: Float32Array, shape: readonly number[]): Buffer {
  const count = shape.reduce((n, d) => n * d, 1);
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`npy: bad shape [${shape}]`);
  if (count !== data.length) throw new Error(`npy: shape [${shape}] holds ${count} values, the data ${data.length}`);
  if (os.endianness() !== 'LE') throw new Error('npy: big-endian hosts are not supported');
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // magic (6) + version (2) + header length (2) + header, ending in '\n'.
  const unpadded = MAGIC.length + 4 + header.length + 1;
  header += ' '.repeat((ALIGN - (unpadded % ALIGN)) % ALIGN) + '\n';
  if (header.length > 0xffff) throw new Error('npy: header too long for format 1.0');
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.set(MAGIC, 0);
  prefix[6] = 1; // major version
  prefix[7] = 0; // minor version
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([
    prefix,
    Buffer.from(header, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  ]);
}

/** Reads the shape and float32 values of an .npy file written by encodeNpy (tests, round trips). */
export function decodeNpy(bytes: Uint8Array): { shape: number[]; data: Float32Array } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!MAGIC.every((b, i) => buf[i] === b) || buf[6] !== 1) throw new Error('npy: not a version 1 .npy file');
  const length = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + length).toString('latin1');
  if (!header.includes("'descr': '<f4'") || !header.includes("'fortran_order': False")) {
    throw new Error(`npy: only little-endian float32 in C order is read, got ${header.trim()}`);
  }
  const match = /'shape': \(([^)]*)\)/.exec(header);
  if (!match) throw new Error('npy: header has no shape');
  const shape = match[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const start = 10 + length;
  const data = new Float32Array((buf.length - start) / 4);
  new Uint8Array(data.buffer).set(buf.subarray(start));
  return { shape, data };
}

/** Writes a float32 [shape] array as an .npy file, atomically. */
export async function writeNpy(file: string, data: Float32Array, shape: readonly number[]): Promise<void> {
  await writeFileAtomic(file, encodeNpy(data, shape));
}

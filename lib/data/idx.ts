/**
 * Reader for the IDX format of MNIST / Fashion-MNIST (`*-images-idx3-ubyte[.gz]`, `*-labels-idx1-ubyte[.gz]`):
 * a big-endian header (magic 0x0000080D: type byte 0x08 = uint8, then the number of dimensions) followed by
 * the dimension sizes as uint32 and the raw data.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';

export interface IdxArray {
  /** Sizes, e.g. [N, 28, 28] for images, [N] for labels. */
  shape: number[];
  data: Uint8Array;
}

/** Parses IDX bytes (optionally gzipped). Throws an Error naming `source` on a malformed file. */
export function parseIdx(bytes: Uint8Array, source = 'idx data'): IdxArray {
  let buf = bytes;
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf);
  if (buf.length < 4) throw new Error(`${source}: too short for an IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf[0] !== 0 || buf[1] !== 0) throw new Error(`${source}: not an IDX file (bad magic)`);
  if (buf[2] !== 0x08) throw new Error(`${source}: IDX element type 0x${buf[2].toString(16)} is not uint8`);
  const ndim = buf[3];
  if (ndim < 1 || ndim > 4 || buf.length < 4 + 4 * ndim) throw new Error(`${source}: bad IDX header (${ndim} dims)`);
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * ndim;
  if (buf.length - start < count) {
    throw new Error(`${source}: IDX data truncated (header says ${count} bytes, file has ${buf.length - start})`);
  }
  return { shape, data: buf.subarray(start, start + count) };
}

export async function readIdx(path: string): Promise<IdxArray> {
  return parseIdx(await readFile(path), path);
}

/**
 * numpy .npy (format versions 1.0, 2.0 and 3.0, per numpy.lib.format) and .npz (a zip of `<name>.npy`
 * members, stored or deflated as np.savez / np.savez_compressed write them). Arrays load as Tensors:
 * uint8, int64, float32, float64 (and int32, int8, float16, bool); Fortran order and big-endian data are
 * converted. Writers produce version 1.0 headers padded to 64 bytes, as numpy does.
 */
import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';

import yazl from 'yazl';

import { describe } from '../core/errors.js';
import { native } from '../native.js';
import { tensor, Tensor, wrap, type DType } from '../core/tensor.js';
import { fileSize, readRange, badFile, writeAtomic } from './files.js';
import { decodeArray, fortranToC, parseNpDType, shapeNumel } from './numpy_values.js';
import { contiguousStrides } from './pickle_globals.js';
import { openZip, readZipEntry, zipEntries } from './zip_index.js';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** numpy descr (without byte order) -> our dtype. */
const NP_TO_DTYPE: Record<string, DType> = {
  f4: 'float32', f8: 'float64', f2: 'float16', i8: 'int64', i4: 'int32', i1: 'int8', u1: 'uint8', b1: 'bool',
};
const DTYPE_TO_NP: Record<string, string> = {
  float32: '<f4', float64: '<f8', float16: '<f2', int64: '<i8', int32: '<i4', int8: '|i1', uint8: '|u1', bool: '|b1',
};
const ELSIZE: Record<string, number> = { float32: 4, float64: 8, float16: 2, int64: 8, int32: 4, int8: 1, uint8: 1, bool: 1 };

interface NpyHeader {
  dtype: DType;
  npDescr: string;
  bigEndian: boolean;
  fortran: boolean;
  shape: number[];
  dataOffset: number;
  nbytes: number;
}

/** Parses the magic, version and header dict; `avail` is the number of bytes after the header. */
function parseNpyHeader(head: Buffer, where: string, total: number): NpyHeader {
  if (head.length < 10 || !head.subarray(0, 6).equals(MAGIC)) throw new Error(`${where}: not a .npy file (bad magic)`);
  const major = head[6];
  let len: number;
  let start: number;
  if (major === 1) (len = head.readUInt16LE(8)), (start = 10);
  else if (major === 2 || major === 3) {
    if (head.length < 12) throw new Error(`${where}: truncated .npy header`);
    (len = head.readUInt32LE(8)), (start = 12);
  } else throw new Error(`${where}: unsupported .npy format version ${major}.${head[7]}`);
  if (start + len > head.length) throw new Error(`${where}: truncated .npy header (needs ${start + len} bytes, file has ${total})`);
  const text = head.subarray(start, start + len).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new Error(`${where}: malformed .npy header ${JSON.stringify(text.slice(0, 120))}`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length).map((s) => {
    if (!/^\d+L?$/.test(s)) throw new Error(`${where}: malformed .npy shape (${shapeText})`);
    return Number(s.replace('L', ''));
  });
  const np = parseNpDType(descr);
  const key = `${np.kind}${np.itemsize}`;
  const dtype = NP_TO_DTYPE[key];
  if (!dtype) throw new Error(`${where}: numpy dtype '${descr}' is not supported (supported: ${Object.values(DTYPE_TO_NP).join(', ')})`);
  const dataOffset = start + len;
  const numel = shapeNumel(shape, Math.max(total - dataOffset, 0));
  const nbytes = numel * ELSIZE[dtype];
  if (numel < 0 || dataOffset + nbytes > total) {
    throw new Error(`${where}: the data of shape [${shape}] ${descr} needs more bytes than the file holds (truncated?)`);
  }
  return { dtype, npDescr: descr, bigEndian: np.byteorder === '>', fortran: fortran === 'True', shape, dataOffset, nbytes };
}

/** Fortran-order strides (in elements) of a shape. */
function fortranStrides(shape: number[]): number[] {
  const st: number[] = [];
  let acc = 1;
  for (const d of shape) st.push(acc), (acc *= Math.max(d, 1));
  return st;
}

/**
 * Loads a .npy file as a Tensor (dtype from the file; Fortran order and big-endian handled).
 * @throws Error naming the file for a bad magic/header, an unsupported dtype, or too few data bytes
 */
export async function loadNpy(path: string): Promise<Tensor> {
  const size = await fileSize(path);
  try {
    let head = await readRange(path, 0, Math.min(size, 4096));
    if (head.length >= 12 && head[6] !== 1) {
      const len = head.readUInt32LE(8);
      if (len + 12 > head.length && len + 12 <= size) head = await readRange(path, 0, len + 12);
    }
    const h = parseNpyHeader(head, path, size);
    const strides = h.fortran ? fortranStrides(h.shape) : contiguousStrides(h.shape);
    const [handle] = await native.io.loadTensors(path, false, [['', h.dataOffset, h.nbytes, h.dtype, h.bigEndian]], [[0, h.shape, strides, 0]]);
    return wrap(handle);
  } catch (err) {
    throw badFile(path, err);
  }
}

/** A .npy held in memory (npz member) -> Tensor. */
function npyFromBuffer(buf: Buffer, where: string): Tensor {
  const h = parseNpyHeader(buf, where, buf.length);
  const np = parseNpDType(h.npDescr.replace(/^[<>|=]/, '<'));
  const raw = buf.subarray(h.dataOffset, h.dataOffset + h.nbytes);
  if (h.bigEndian) np.byteorder = '>';
  let data;
  if (h.dtype === 'float16') {
    const bits = new Uint16Array(h.nbytes / 2);
    new Uint8Array(bits.buffer).set(raw);
    if (h.bigEndian) for (let i = 0; i < bits.length; ++i) bits[i] = ((bits[i] & 0xff) << 8) | (bits[i] >> 8);
    data = bits;
  } else {
    data = decodeArray(np, raw, h.nbytes / ELSIZE[h.dtype], where);
  }
  if (h.fortran && h.shape.length > 1) data = fortranToC(data, h.shape);
  return tensor(data as never, h.shape, { dtype: h.dtype, raw: h.dtype === 'float16' });
}

/** Loads every `<name>.npy` member of a .npz file (stored or deflated) as name -> Tensor. */
export async function loadNpz(path: string): Promise<Map<string, Tensor>> {
  const size = await fileSize(path);
  let zf;
  try {
    zf = await openZip(path);
  } catch (err) {
    throw new Error(`${path}: not a valid .npz (zip) file (${(err as Error).message})`);
  }
  try {
    const out = new Map<string, Tensor>();
    for (const [info, e] of await zipEntries(zf)) {
      if (info.name.endsWith('/')) continue;
      const name = info.name.endsWith('.npy') ? info.name.slice(0, -4) : info.name;
      // deflate expands at most ~1032x: a larger declared size is corrupt
      const buf = await readZipEntry(zf, e, size * 1032 + 1024);
      out.set(name, npyFromBuffer(buf, `${path} (${info.name})`));
    }
    return out;
  } catch (err) {
    throw badFile(path, err);
  } finally {
    zf.close();
  }
}

/** The .npy header (version 1.0, padded so the data starts at a multiple of 64) for a tensor. */
function npyHeader(t: Tensor, arg: string): Buffer {
  const descr = DTYPE_TO_NP[t.dtype];
  if (!descr) throw new TypeError(`${arg}: dtype ${t.dtype} has no numpy equivalent`);
  const shape = t.shape;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  MAGIC.copy(head);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  return Buffer.concat([head, Buffer.from(dict, 'latin1')]);
}

function checkTensor(t: unknown, arg: string): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`${arg}: expected a Tensor, got ${describe(t)}`);
  return t;
}

/** Writes a Tensor as a .npy file (version 1.0, C order, little-endian), atomically. */
export async function saveNpy(path: string, t: Tensor): Promise<void> {
  checkTensor(t, 'tensor');
  const head = npyHeader(t, 'tensor');
  await writeAtomic(path, (tmp) => native.io.writeFile(tmp, [head, t.handle]));
}

/** The .npy bytes of a tensor, in memory (for npz members). */
async function npyBytes(t: Tensor, arg: string): Promise<Buffer> {
  const head = npyHeader(t, arg);
  const data = await t.data({ raw: t.dtype === 'float16' });
  return Buffer.concat([head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/**
 * Writes name -> Tensor as a .npz file (members `<name>.npy`), atomically.
 * @param opts.compressed deflate the members, as np.savez_compressed does (default false, as np.savez)
 */
export async function saveNpz(path: string, arrays: Map<string, Tensor>, opts: { compressed?: boolean } = {}): Promise<void> {
  if (!(arrays instanceof Map)) throw new TypeError(`arrays: expected a Map<string, Tensor>, got ${describe(arrays)}`);
  const members: [string, Buffer][] = [];
  for (const [k, t] of arrays) {
    if (typeof k !== 'string' || k.length === 0) throw new TypeError(`arrays: names must be non-empty strings`);
    members.push([`${k}.npy`, await npyBytes(checkTensor(t, `arrays['${k}']`), `arrays['${k}']`)]);
  }
  await writeAtomic(path, async (tmp) => {
    const zip = new yazl.ZipFile();
    for (const [name, buf] of members) zip.addBuffer(buf, name, { compress: !!opts.compressed, mtime: new Date(1980, 0, 1) });
    zip.end();
    await new Promise<void>((resolve, reject) => {
      const ws = createWriteStream(tmp);
      zip.outputStream.on('error', reject).pipe(ws).on('error', reject).on('close', resolve);
    });
    const fh = await open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

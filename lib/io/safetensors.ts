/**
 * safetensors files (https://github.com/huggingface/safetensors, format section): an 8-byte little-endian
 * header length N, N bytes of JSON `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__? }`,
 * then the tensor bytes (offsets relative to the end of the header). The header is checked against the
 * file size before anything is read; tensor bytes are read natively, per tensor, without a full-file copy.
 */
import { describe } from '../core/errors.js';
import { stateDictEntries } from '../core/module.js';
import { native } from '../native.js';
import { Tensor, wrap, type DType } from '../core/tensor.js';
import { fileSize, readRange, badFile, writeAtomic } from './files.js';
import { contiguousStrides } from './pickle_globals.js';

/** safetensors dtype -> [our dtype, element size]. */
const ST_DTYPES: Record<string, [DType, number]> = {
  F32: ['float32', 4], F64: ['float64', 8], F16: ['float16', 2], BF16: ['bfloat16', 2], I64: ['int64', 8],
  I32: ['int32', 4], I8: ['int8', 1], U8: ['uint8', 1], BOOL: ['bool', 1],
};
const ST_OF_DTYPE: Record<string, string> = Object.fromEntries(Object.entries(ST_DTYPES).map(([k, [d]]) => [d, k]));
/** Largest header accepted (the reference implementation's limit is 100 MB). */
const MAX_HEADER = 100_000_000;

interface HeaderEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

function parseHeader(path: string, json: string, dataSize: number): { entries: HeaderEntry[]; metadata?: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (err) {
    throw new Error(`${path}: the safetensors header is not valid JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new Error(`${path}: the safetensors header is not a JSON object`);
  }
  const entries: HeaderEntry[] = [];
  let metadata: Record<string, string> | undefined;
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = v as Record<string, string>;
      continue;
    }
    const bad = (m: string): never => {
      throw new Error(`${path}: tensor '${name}': ${m}`);
    };
    if (v === null || typeof v !== 'object') bad('header entry is not an object');
    const { dtype, shape, data_offsets: off } = v as { dtype: unknown; shape: unknown; data_offsets: unknown };
    const spec = typeof dtype === 'string' ? ST_DTYPES[dtype] : undefined;
    if (!spec) bad(`dtype ${JSON.stringify(dtype)} is not supported (supported: ${Object.keys(ST_DTYPES).join(', ')})`);
    if (!Array.isArray(shape) || shape.length > 64 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad('bad shape');
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) bad('bad data_offsets');
    const [begin, end] = off as number[];
    let numel = 1;
    for (const d of shape as number[]) numel *= d;
    if (begin > end || end > dataSize) bad(`data_offsets [${begin}, ${end}] lie outside the data (${dataSize} bytes)`);
    if (end - begin !== numel * spec![1]) bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes, shape [${shape}] needs ${numel * spec![1]}`);
    entries.push({ name, dtype: spec![0], shape: shape as number[], begin, end });
  }
  return { entries, metadata };
}

/**
 * Loads a .safetensors file.
 * @returns name -> Tensor in header order (dtypes F32, F64, F16, BF16, I64, I32, I8, U8, BOOL)
 * @throws Error naming the file and the problem (bad header, offsets outside the file, unknown dtype)
 */
export async function loadSafetensors(path: string): Promise<Map<string, Tensor>> {
  const size = await fileSize(path);
  try {
    if (size < 8) throw new Error(`truncated file (${size} bytes; a safetensors file starts with an 8-byte header length)`);
    const n = (await readRange(path, 0, 8)).readBigUInt64LE(0);
    if (n > BigInt(Math.min(size - 8, MAX_HEADER))) throw new Error(`header length ${n} exceeds the file (${size} bytes) or the limit`);
    const json = (await readRange(path, 8, Number(n))).toString('utf8');
    const base = 8 + Number(n);
    const { entries } = parseHeader(path, json, size - base);
    const storages = entries.map((e): [string, number, number, string, boolean, boolean] => ['', base + e.begin, e.end - e.begin, e.dtype, false, true]);
    const views = entries.map((e, i): [number, number[], number[], number] => [i, e.shape, contiguousStrides(e.shape), 0]);
    const handles = entries.length ? await native.io.loadTensors(path, false, storages, views) : [];
    return new Map(entries.map((e, i) => [e.name, wrap(handles[i])]));
  } catch (err) {
    throw badFile(path, err);
  }
}

/** The `__metadata__` string map of a .safetensors file (empty when absent). */
export async function readSafetensorsMetadata(path: string): Promise<Record<string, string>> {
  const size = await fileSize(path);
  const n = size >= 8 ? (await readRange(path, 0, 8)).readBigUInt64LE(0) : -1n;
  if (n < 0n || n > BigInt(Math.min(size - 8, MAX_HEADER))) throw new Error(`${path}: not a safetensors file`);
  const json = (await readRange(path, 8, Number(n))).toString('utf8');
  return parseHeader(path, json, size - 8 - Number(n)).metadata ?? {};
}

/**
 * Writes a .safetensors file atomically (temporary file, fsync, rename), tensors in the map's order.
 * @param tensors name -> Tensor (dtypes of the dtype table of docs/architecture.md)
 * @param metadata optional string -> string map stored as `__metadata__`
 */
export async function saveSafetensors(path: string, tensors: Map<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  const entries = stateDictEntries(tensors, 'tensors');
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object') throw new TypeError(`metadata: expected an object of strings, got ${describe(metadata)}`);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`metadata['${k}']: expected a string, got ${describe(v)}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const parts: (Uint8Array | import('../native.js').TensorHandle)[] = [];
  for (const [name, h] of entries) {
    if (name === '__metadata__') throw new RangeError(`tensors: the name '__metadata__' is reserved`);
    const dtype = h.dtype();
    const st = ST_OF_DTYPE[dtype];
    if (!st) throw new TypeError(`tensors['${name}']: dtype ${dtype} cannot be saved`);
    const shape = h.shape();
    const nbytes = shape.reduce((a, b) => a * b, 1) * ST_DTYPES[st][1];
    header[name] = { dtype: st, shape, data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
    parts.push(h);
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  await writeAtomic(path, (tmp) => native.io.writeFile(tmp, [len, json, ...parts]));
}

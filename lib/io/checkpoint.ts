/**
 * loadCheckpoint: torch.save files (zip archives of any folder name, and the legacy non-zip format) and
 * PyTorch Lightning .ckpt files, read safely (see ./pickle.ts) and without a full-file copy in JS memory:
 * the pickle is parsed here, then ONE native call reads the storages it names and builds every tensor.
 * Stored (uncompressed) records, which is how torch.save writes them, are not read but memory-mapped
 * copy-on-write: loading a multi-GB checkpoint costs neither a copy nor resident memory until the tensors
 * are used (native/ibq/io/tensor_io.h).
 */
import { native } from '../native.js';
import { Tensor, wrap } from '../core/tensor.js';
import { fileSize, readRange, badFile } from './files.js';
import { loadLegacy } from './legacy.js';
import { unpickle } from './pickle.js';
import { TensorRef, type PickleContext, type StorageRef } from './pickle_globals.js';
import { storageFromPid, type ParsedPickle } from './storages.js';
import { finalize } from './py_values.js';
import { UnsupportedTensor } from './unsupported.js';
import { zipIndex, type ZipEntryInfo } from './zip_index.js';

/** What loadCheckpoint returns (docs/architecture.md). */
export interface Checkpoint {
  /** The 'state_dict' entry (or the whole file when it is a plain dict of tensors), in file order. */
  stateDict: Map<string, Tensor>;
  /** Every other top-level entry; tensors nested in it are Tensors (or UnsupportedTensor). */
  meta: Record<string, unknown>;
}

async function parseZip(path: string, size: number): Promise<ParsedPickle> {
  let index: Map<string, ZipEntryInfo>;
  try {
    index = await zipIndex(path);
  } catch (err) {
    throw new Error(`${path}: not a valid zip archive (${(err as Error).message})`);
  }
  const pklName = [...index.keys()].find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (!pklName) throw new Error(`${path}: the zip archive has no data.pkl record (not a torch.save file)`);
  const prefix = pklName.slice(0, -'data.pkl'.length);
  const entry = (name: string, need: number): ZipEntryInfo => {
    const e = index.get(prefix + name);
    if (!e) throw new Error(`${path}: the archive has no record '${prefix + name}'`);
    if (e.uncompressedSize > size || (e.method !== 0 && e.method !== 8)) {
      throw new Error(`${path}: record '${prefix + name}' is corrupt (declares ${e.uncompressedSize} bytes, method ${e.method})`);
    }
    if (e.uncompressedSize < need) {
      throw new Error(`${path}: record '${prefix + name}' holds ${e.uncompressedSize} bytes, but its storage needs ${need}`);
    }
    return e;
  };
  entry('data.pkl', 0);
  let byteswap = false;
  if (index.has(prefix + 'byteorder')) {
    entry('byteorder', 0);
    const order = (await native.io.zipRecord(path, 'byteorder')).toString('latin1').trim();
    if (order !== 'little' && order !== 'big') throw new Error(`${path}: unknown byteorder '${order}'`);
    byteswap = order === 'big';
  }
  const pkl = await native.io.zipRecord(path, 'data.pkl');
  const where = `${path} (${pklName})`;
  const ctx: PickleContext = { where, tensors: [] };
  const cache = new Map<string, StorageRef>();
  const { value } = unpickle(pkl, { where, ctx, persistentLoad: (pid) => storageFromPid(pid, where, size, cache) });
  return {
    root: value,
    ctx,
    async read(storages, refs, storageIndex) {
      const specs = storages.map((s): [string, number, number, string, boolean, boolean] => {
        const nbytes = s.numel * s.elementSize;
        const stored = entry(`data/${s.key}`, nbytes).method === 0;  // uncompressed: memory-mapped in place
        return [`data/${s.key}`, 0, nbytes, s.dtype, byteswap, stored];
      });
      const views = refs.map((r): [number, number[], number[], number] => [storageIndex.get(r.storage)!, r.size, r.stride, r.offset]);
      return (await native.io.loadTensors(path, true, specs, views)).map(wrap);
    },
  };
}

function describeKey(k: unknown): string {
  return typeof k === 'string' ? k : String(k);
}

/**
 * Loads a torch.save / Lightning checkpoint (zip or legacy format).
 * @returns stateDict (the 'state_dict' entry, or the whole file when it is a dict of tensors; tensors in
 *   their stored dtype) and meta (every other entry; nested tensors stay Tensors, OmegaConf and other
 *   non-allow-listed objects are `{ __class__, args, state }` with shared references and cycles kept).
 * @throws Error naming the file and the problem for a missing, truncated or malformed file, and for a
 *   state_dict tensor whose dtype is outside the dtype table of docs/architecture.md.
 */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const size = await fileSize(path);
  try {
    const head = await readRange(path, 0, 4);
    const isZip = head.length === 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
    const parsed = isZip ? await parseZip(path, size) : await loadLegacy(path, size);
    return await buildCheckpoint(path, parsed);
  } catch (err) {
    throw badFile(path, err);
  }
}

async function buildCheckpoint(path: string, parsed: ParsedPickle): Promise<Checkpoint> {
  const { root } = parsed;
  let sdMap: Map<unknown, unknown> | undefined;
  let metaEntries: [unknown, unknown][] = [];
  if (root instanceof Map) {
    const sd = root.get('state_dict');
    if (sd instanceof Map) {
      sdMap = sd;
      metaEntries = [...root].filter(([k]) => k !== 'state_dict');
    } else if (root.size > 0 && [...root.values()].every((v) => v instanceof TensorRef)) {
      sdMap = root;
    } else {
      metaEntries = [...root];
    }
  } else {
    metaEntries = [['value', root]];
  }
  for (const [k, v] of sdMap ?? []) {
    if (typeof k !== 'string') throw new Error(`${path}: state_dict key ${describeKey(k)} is not a string`);
    if (!(v instanceof TensorRef)) throw new Error(`${path}: state_dict['${k}'] is not a tensor`);
    if (!v.storage.supported || v.quantized) {
      throw new Error(`${path}: state_dict['${k}'] has dtype ${v.storage.dtype}${v.quantized ? ' (quantized)' : ''}, which is not supported`);
    }
  }
  const refs = parsed.ctx.tensors.filter((r) => r.storage.supported && !r.quantized);
  const storages: StorageRef[] = [];
  const storageIndex = new Map<StorageRef, number>();
  for (const r of refs) {
    if (!storageIndex.has(r.storage)) {
      storageIndex.set(r.storage, storages.length);
      storages.push(r.storage);
    }
  }
  const tensors = refs.length ? await parsed.read(storages, refs, storageIndex) : [];
  const byRef = new Map<TensorRef, Tensor>(refs.map((r, i) => [r, tensors[i]]));
  const resolve = (r: TensorRef, at: string): unknown =>
    byRef.get(r) ?? new UnsupportedTensor(at, r.storage.dtype + (r.quantized ? ' (quantized)' : ''), r.size);
  const stateDict = new Map<string, Tensor>();
  for (const [k, v] of sdMap ?? []) stateDict.set(k as string, byRef.get(v as TensorRef)!);
  // references to the root dict inside meta (a self-referencing file) point at meta itself
  const metaSource = root instanceof Map && metaEntries.length === root.size ? root : new Map(metaEntries);
  const aliases = root instanceof Map && metaSource !== root ? new Map<object, object>([[root, metaSource]]) : undefined;
  const meta = finalize(metaSource, resolve, path, 'meta', aliases) as Record<string, unknown> | Map<unknown, unknown>;
  if (meta instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of meta) o[String(k)] = v;
    return { stateDict, meta: o };
  }
  return { stateDict, meta };
}

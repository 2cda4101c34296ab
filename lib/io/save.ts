/**
 * saveCheckpoint: writes a torch.save zip archive (torch 1.13 layout: <stem>/data.pkl, <stem>/data/N,
 * <stem>/version, plus <stem>/byteorder as torch >= 2.1 writes it) that Python's torch.load reads. The
 * pickle is made in TS (./pickle_writer.ts); the archive is written natively by caffe2's
 * PyTorchStreamWriter in one call, to a temporary file in the same folder, fsynced, then renamed.
 */
import { describe } from '../core/errors.js';
import { native, type TensorHandle } from '../native.js';
import { Tensor } from '../core/tensor.js';
import { writeAtomic } from './files.js';
import { OrderedDictValue, pickleForTorch } from './pickle_writer.js';

export interface SaveCheckpointInput {
  /** Saved as the 'state_dict' entry (an OrderedDict, key order kept). */
  stateDict: Map<string, Tensor> | Iterable<[string, Tensor]>;
  /** Other top-level entries (numbers, strings, booleans, null, arrays, nested objects, Maps, Tensors). */
  meta?: Record<string, unknown>;
}

/**
 * Saves `{ state_dict, ...meta }` so that `torch.load(path)` returns it (tensors as contiguous CPU
 * tensors of their dtype; each Tensor object gets its own storage). Atomic: an earlier file at `path`
 * stays intact if the write fails.
 * @throws TypeError for values that cannot be saved (functions, symbols, unsupported tensors), naming them
 */
export async function saveCheckpoint(path: string, input: SaveCheckpointInput): Promise<void> {
  if (input === null || typeof input !== 'object') throw new TypeError(`checkpoint: expected { stateDict, meta? }, got ${describe(input)}`);
  const sd = input.stateDict;
  if (sd === null || typeof sd !== 'object' || typeof (sd as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    throw new TypeError(`stateDict: expected a Map<string, Tensor>, got ${describe(sd)}`);
  }
  const entries: [string, unknown][] = [];
  for (const e of sd as Iterable<[string, Tensor]>) {
    if (!Array.isArray(e) || typeof e[0] !== 'string') throw new TypeError('stateDict: expected entries [name: string, tensor: Tensor]');
    if (!(e[1] instanceof Tensor)) throw new TypeError(`stateDict['${e[0]}']: expected a Tensor, got ${describe(e[1])}`);
    entries.push([e[0], e[1]]);
  }
  const meta = input.meta ?? {};
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new TypeError(`meta: expected an object, got ${describe(meta)}`);
  if ('state_dict' in meta) throw new RangeError(`meta: the key 'state_dict' is reserved for stateDict`);
  const root = new Map<string, unknown>([['state_dict', new OrderedDictValue(entries)], ...Object.entries(meta)]);
  const { pickle, storages } = await pickleForTorch(root, path);
  const records: [string, Uint8Array | TensorHandle][] = [['data.pkl', pickle]];
  storages.forEach((t, i) => records.push([`data/${i}`, t.handle]));
  records.push(['byteorder', Buffer.from('little')]);
  await writeAtomic(path, (tmp) => native.io.writeZip(tmp, records));
}

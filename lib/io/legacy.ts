/**
 * The legacy (non-zip) torch.save format (torch < 1.6, or `_use_new_zipfile_serialization=False`): five
 * pickles back to back (magic number, protocol version 1001, sys_info, the object, the sorted storage
 * keys), then each storage as an int64 element count followed by its raw bytes. The pickles are parsed
 * from a prefix of the file (grown until they fit); the storage bytes are read natively at their offsets.
 */
import { open } from 'node:fs/promises';

import { native } from '../native.js';
import { wrap } from '../core/tensor.js';
import { readRange } from './files.js';
import { storageFromPid, type ParsedPickle } from './storages.js';
import { PickleTruncatedError, unpickle } from './pickle.js';
import type { PickleContext, StorageRef } from './pickle_globals.js';

const MAGIC = 0x1950a86a20f9469cfc6cn;
const FIRST_CHUNK = 1 << 20;

export async function loadLegacy(path: string, size: number): Promise<ParsedPickle> {
  if (size === 0) throw new Error(`${path}: empty file`);
  let chunk = Math.min(size, FIRST_CHUNK);
  for (;;) {
    const data = await readRange(path, 0, chunk);
    try {
      return await parseLegacy(path, size, data);
    } catch (err) {
      if (!(err instanceof PickleTruncatedError) || chunk >= size) {
        if (err instanceof PickleTruncatedError) throw new Error(`${path}: truncated file (${err.message.replace(/^.*?: /, '')})`);
        throw err;
      }
      chunk = Math.min(size, chunk * 4);
    }
  }
}

async function parseLegacy(path: string, size: number, data: Uint8Array): Promise<ParsedPickle> {
  const where = path;
  if (data[0] !== 0x80) {
    throw new Error(`${path}: not a torch checkpoint (neither a zip archive nor a pickle; first byte 0x${(data[0] ?? 0).toString(16)})`);
  }
  const magic = unpickle(data, { where });
  if (magic.value !== MAGIC && BigInt(typeof magic.value === 'number' ? magic.value : 0) !== MAGIC) {
    throw new Error(`${path}: not a torch.save file (a plain pickle without torch's magic number)`);
  }
  const proto = unpickle(data, { where, start: magic.end });
  if (proto.value !== 1001) throw new Error(`${path}: unsupported legacy protocol version ${String(proto.value)}`);
  const sys = unpickle(data, { where, start: proto.end });
  const info = sys.value instanceof Map ? sys.value : new Map();
  const byteswap = info.get('little_endian') === false;
  const ctx: PickleContext = { where, tensors: [] };
  const cache = new Map<string, StorageRef>();
  const obj = unpickle(data, {
    where,
    ctx,
    start: sys.end,
    persistentLoad: (pid) => {
      const ref = storageFromPid(pid, where, size, cache);
      const view = Array.isArray(pid) ? pid[5] : null;
      if (Array.isArray(view) && view.length >= 3) {
        const [vk, off, vsize] = view as unknown[];
        if (typeof off !== 'number' || typeof vsize !== 'number' || off < 0 || off + vsize > ref.numel) {
          throw new Error(`${where}: malformed storage view ${String(vk)}`);
        }
        return { ...ref, key: String(vk), numel: vsize, viewOf: { root: ref, offset: off } } satisfies StorageRef;
      }
      return ref;
    },
  });
  const keysPickle = unpickle(data, { where, start: obj.end });
  if (!Array.isArray(keysPickle.value) || !keysPickle.value.every((k) => typeof k === 'string' || typeof k === 'number')) {
    throw new Error(`${path}: malformed storage key list`);
  }
  const keys = (keysPickle.value as unknown[]).map(String);
  // element sizes of the root storages by key
  const elsize = new Map<string, number>();
  for (const r of cache.values()) elsize.set(r.key, r.elementSize);
  // offsets of each storage's bytes: sequential after the key list
  const offsets = new Map<string, { offset: number; count: number }>();
  const fh = await open(path, 'r');
  try {
    let pos = keysPickle.end;
    const head = Buffer.alloc(8);
    for (const k of keys) {
      const es = elsize.get(k);
      if (es === undefined) throw new Error(`${path}: storage ${k} is listed but never used`);
      if (pos + 8 > size) throw new Error(`${path}: truncated file (storage ${k} header at byte ${pos})`);
      await fh.read(head, 0, 8, pos);
      const count = head.readBigInt64LE(0);
      if (count < 0n || count * BigInt(es) > BigInt(size - pos - 8)) {
        throw new Error(`${path}: storage ${k} claims ${count} elements, more than the file holds (truncated or corrupt)`);
      }
      offsets.set(k, { offset: pos + 8, count: Number(count) });
      pos += 8 + Number(count) * es;
    }
  } finally {
    await fh.close();
  }
  return {
    root: obj.value,
    ctx,
    async read(storages, refs) {
      // views share their root storage's bytes
      const roots: StorageRef[] = [];
      const rootIndex = new Map<string, number>();
      const rootOf = (s: StorageRef) => s.viewOf?.root ?? s;
      for (const s of storages) {
        const r = rootOf(s);
        if (!rootIndex.has(r.key)) {
          rootIndex.set(r.key, roots.length);
          roots.push(r);
        }
      }
      const specs = roots.map((r): [string, number, number, string, boolean, boolean] => {
        const at = offsets.get(r.key);
        if (!at) throw new Error(`${path}: storage ${r.key} is missing from the file`);
        if (at.count < r.numel) throw new Error(`${path}: storage ${r.key} holds ${at.count} elements, but ${r.numel} are needed`);
        return ['', at.offset, r.numel * r.elementSize, r.dtype, byteswap, true];
      });
      const views = refs.map((t): [number, number[], number[], number] => [
        rootIndex.get(rootOf(t.storage).key)!,
        t.size,
        t.stride,
        t.offset + (t.storage.viewOf?.offset ?? 0),
      ]);
      return (await native.io.loadTensors(path, false, specs, views)).map(wrap);
    },
  };
}

/** The storages of a parsed torch.save pickle (zip and legacy formats): persistent ids to storage references. */
import type { Tensor } from '../core/tensor.js';
import { PyGlobal, STORAGE_TYPES, type PickleContext, type StorageRef, type TensorRef } from './pickle_globals.js';

/** A parsed torch.save pickle and how to read the storages it names. */
export interface ParsedPickle {
  root: unknown;
  ctx: PickleContext;
  /** Reads the storages (deduplicated) and builds the tensors, one native call. */
  read(storages: StorageRef[], refs: TensorRef[], storageIndex: Map<StorageRef, number>): Promise<Tensor[]>;
}

/** Turns a persistent id ('storage', StorageClass, key, location, numel[, view]) into a StorageRef. */
export function storageFromPid(pid: unknown, where: string, maxBytes: number, cache: Map<string, StorageRef>): StorageRef {
  const bad = (m: string): never => {
    throw new Error(`${where}: malformed pickle: persistent id ${m}`);
  };
  if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== 'storage') bad('is not a storage tuple');
  const [, type, key, , numel] = pid as unknown[];
  if (!(type instanceof PyGlobal)) bad('has no storage class');
  const cls = (type as PyGlobal).name;
  const spec = STORAGE_TYPES[cls];
  if (!spec) bad(`names an unknown storage class ${(type as PyGlobal).fullName}`);
  if (typeof key !== 'string' && typeof key !== 'number') bad('has no key');
  if (typeof numel !== 'number' || !Number.isInteger(numel) || numel < 0) bad(`has a bad size ${String(numel)}`);
  const [dtype, elementSize] = spec;
  if ((numel as number) * elementSize > maxBytes) {
    throw new Error(`${where}: storage ${String(key)} claims ${numel} elements of ${elementSize} bytes, more than the file holds`);
  }
  const id = `${String(key)}/${cls}`;
  let ref = cache.get(id);
  if (!ref) {
    ref = { key: String(key), dtype: dtype ?? cls, supported: dtype !== null, elementSize, numel: numel as number };
    cache.set(id, ref);
  }
  return ref;
}


/**
 * Reference values from /usr/bin/python3 (torch 1.13, numpy) for the checkpoint tests: runs a Python
 * snippet that writes tensors as raw bytes + a JSON index, so tests compare our tensors bit for bit.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Tensor } from '../../dist/index.js';
import { run } from './run.js';

export const PY = process.env.IBQ_REF_PYTHON ?? '/usr/bin/python3';
export const HAVE_TORCH = existsSync(PY) && (await run(PY, ['-c', 'import torch, numpy'])).status === 0;

/** Runs `code` with sys.argv[1:] = args (and `input` on stdin); throws with stderr on failure; returns stdout. */
export async function runPython(code: string, args: string[] = [], timeout = 120_000, input?: Buffer): Promise<string> {
  const r = await run(PY, ['-c', code, ...args], { timeout, maxBuffer: 64 << 20, input });
  if (r.status !== 0) throw new Error(`python failed (${r.status ?? r.signal}):\n${r.stderr}`);
  return r.stdout;
}

/** Python prelude: dump(named_tensors: list of (key, tensor), out_dir) -> ref.bin + ref.json. */
export const PY_DUMP = `
import json, sys, torch
def dump(items, out):
    index = []
    with open(out + '/ref.bin', 'wb') as f:
        off = 0
        for k, v in items:
            v = v.detach().contiguous().reshape(-1)
            b = v.view(torch.uint8).numpy().tobytes() if v.numel() else b''
            index.append({'key': k, 'dtype': str(v.dtype).replace('torch.', ''), 'shape': list(_shapes[k]), 'offset': off, 'nbytes': len(b)})
            f.write(b); off += len(b)
    json.dump(index, open(out + '/ref.json', 'w'))
_shapes = {}
def named(items):
    items = list(items)
    for k, v in items: _shapes[k] = v.shape
    return items
`;

export interface RefTensor {
  key: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Reads what PY_DUMP's dump() wrote. */
export function readDump(dir: string): RefTensor[] {
  const index = JSON.parse(readFileSync(join(dir, 'ref.json'), 'utf8')) as { key: string; dtype: string; shape: number[]; offset: number; nbytes: number }[];
  const bin = readFileSync(join(dir, 'ref.bin'));
  return index.map((e) => ({ ...e, bytes: new Uint8Array(bin.buffer, bin.byteOffset + e.offset, e.nbytes) }));
}

const TORCH_DTYPE: Record<string, string> = {
  float32: 'float32', float64: 'float64', float16: 'float16', bfloat16: 'bfloat16', int64: 'int64',
  int32: 'int32', int8: 'int8', uint8: 'uint8', bool: 'bool',
};
export function torchDTypeName(d: string): string {
  return TORCH_DTYPE[d] ?? d;
}

/** The raw little-endian bytes of a tensor (16-bit floats as their bits). */
export function tensorBytes(t: Tensor): Uint8Array {
  const raw = t.dtype === 'float16' || t.dtype === 'bfloat16';
  const a = t.dataSync({ raw });
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

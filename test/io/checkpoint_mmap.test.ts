// Memory-mapped loading (native/ibq/io/tensor_io.h): stored zip records, legacy byte ranges and safetensors
// data are viewed in place, copy-on-write. Loaded tensors keep their values when the file is replaced
// atomically by saveCheckpoint / saveSafetensors, and equal what a plain read (IBQ_NO_MMAP=1) gives.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { loadCheckpoint, loadSafetensors, saveCheckpoint, saveSafetensors, tensor, Tensor } from '../../dist/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'ibq-mmap-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.IBQ_NO_MMAP;
});

function weights(scale: number): Map<string, Tensor> {
  return new Map<string, Tensor>([
    ['a.weight', tensor(Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i) * scale), [64, 64])],
    ['a.bias', tensor(Float64Array.from({ length: 7 }, (_, i) => i * scale), [7])],
    ['steps', tensor(BigInt64Array.from([1n, 2n, BigInt(scale)]), [3], { dtype: 'int64' })],
    ['mask', tensor(Uint8Array.from([1, 0, 1]), [3], { dtype: 'uint8' })],
  ]);
}

async function values(sd: Map<string, Tensor>): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [k, t] of sd) out[k] = Array.from(await t.data(), Number);
  return out;
}

describe('memory-mapped checkpoint loading', () => {
  it('torch.save zip: tensors loaded before an atomic overwrite keep the old values; equal to a plain read', async () => {
    const path = join(tmp, 'w.ckpt');
    await saveCheckpoint(path, { stateDict: weights(1) });
    const mapped = (await loadCheckpoint(path)).stateDict;
    process.env.IBQ_NO_MMAP = '1';
    const read = (await loadCheckpoint(path)).stateDict;
    delete process.env.IBQ_NO_MMAP;
    const expected = await values(weights(1));
    expect(await values(read)).toEqual(expected);
    expect(await values(mapped)).toEqual(expected);

    await saveCheckpoint(path, { stateDict: weights(3) });  // replaces the file (rename), old map stays valid
    expect(await values(mapped)).toEqual(expected);
    expect(await values((await loadCheckpoint(path)).stateDict)).toEqual(await values(weights(3)));
  });

  it('safetensors: the same for a plain file', async () => {
    const path = join(tmp, 'w.safetensors');
    await saveSafetensors(path, weights(2));
    const mapped = await loadSafetensors(path);
    const expected = await values(weights(2));
    expect(await values(mapped)).toEqual(expected);
    await saveSafetensors(path, weights(5));
    expect(await values(mapped)).toEqual(expected);
    expect(await values(await loadSafetensors(path))).toEqual(await values(weights(5)));
  });
});

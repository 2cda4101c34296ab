// .npy / .npz: files numpy writes load bit-exact; numpy loads ours.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadNpy, loadNpz, saveNpy, saveNpz, tensor, Tensor } from '../../dist/index.js';
import { HAVE_TORCH, PY_DUMP, readDump, runPython, sameBytes, tensorBytes, type RefTensor } from '../support/torch_ref.js';

const tmp = mkdtempSync(join(tmpdir(), 'ibq-npy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const GENERATE = PY_DUMP + `
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(0)
arrs = {
  'u8': rng.integers(0, 256, (4, 5), dtype=np.uint8),
  'i64': rng.integers(-2**62, 2**62, (3, 2), dtype=np.int64),
  'f32': rng.standard_normal((2, 3, 4)).astype(np.float32),
  'f64': rng.standard_normal(7),
  'f32_fortran': np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
  'f64_big': rng.standard_normal((2, 2)).astype('>f8'),
  'i64_big': np.arange(5).astype('>i8'),
  'scalar': np.float32(2.5).reshape(()),
  'empty': np.zeros((0, 3), dtype=np.float64),
}
for k, a in arrs.items():
    np.save(out + '/' + k + '.npy', a)
np.savez(out + '/stored.npz', **arrs)
np.savez_compressed(out + '/compressed.npz', **arrs)
# version 2.0 header
with open(out + '/v2.npy', 'wb') as f:
    np.lib.format.write_array(f, arrs['f32'], version=(2, 0))
dump(named((k, torch.from_numpy(np.array(a, order='C', dtype=a.dtype.newbyteorder('=')))) for k, a in arrs.items()), out)
`;

let ref: RefTensor[] = [];
beforeAll(async () => {
  if (!HAVE_TORCH) return;
  await runPython(GENERATE, [tmp]);
  ref = readDump(tmp);
});

function expectRef(key: string, t: Tensor) {
  const r = ref.find((x) => x.key === key)!;
  expect(t.dtype, key).toBe(r.dtype);
  expect(t.shape, key).toEqual(r.shape);
  expect(sameBytes(tensorBytes(t), r.bytes), `${key} bytes`).toBe(true);
}

describe.skipIf(!HAVE_TORCH)('numpy files', () => {
  it('loadNpy reads what np.save writes (C/Fortran order, big-endian, 0-d, empty)', async () => {
    for (const r of ref) expectRef(r.key, await loadNpy(join(tmp, `${r.key}.npy`)));
    expectRef('f32', await loadNpy(join(tmp, 'v2.npy')));
  });

  for (const name of ['stored.npz', 'compressed.npz']) {
    it(`loadNpz reads np.savez${name.startsWith('c') ? '_compressed' : ''}`, async () => {
      const m = await loadNpz(join(tmp, name));
      expect([...m.keys()].sort()).toEqual(ref.map((r) => r.key).sort());
      for (const [k, t] of m) expectRef(k, t);
    });
  }

  it('numpy loads saveNpy / saveNpz output with the same values and dtypes', async () => {
    const arrays = new Map<string, Tensor>([
      ['u8', tensor(Uint8Array.from([0, 7, 255, 3, 4, 5]), [2, 3])],
      ['i64', tensor(BigInt64Array.from([-(2n ** 62n), 5n]), [2])],
      ['f32', tensor(Float32Array.from([1.5, -2.25, 1e-30]), [3, 1])],
      ['f64', tensor(Float64Array.from([Math.PI]), [])],
      ['empty', tensor([], [0, 2], { dtype: 'float64' })],
    ]);
    for (const [k, t] of arrays) await saveNpy(join(tmp, `ours_${k}.npy`), t);
    await saveNpz(join(tmp, 'ours.npz'), arrays);
    await saveNpz(join(tmp, 'ours_c.npz'), arrays, { compressed: true });
    const got = JSON.parse(
      await runPython(
        `
import sys, json, numpy as np
d = sys.argv[1]
res = {}
for k in ['u8', 'i64', 'f32', 'f64', 'empty']:
    a = np.load(d + '/ours_' + k + '.npy')
    res[k] = [str(a.dtype), list(a.shape), a.tobytes().hex()]
for z in ['ours.npz', 'ours_c.npz']:
    with np.load(d + '/' + z) as f:
        res[z] = {k: [str(f[k].dtype), list(f[k].shape), f[k].tobytes().hex()] for k in f.files}
print(json.dumps(res))
`,
        [tmp],
      ),
    );
    const np: Record<string, string> = { u8: 'uint8', i64: 'int64', f32: 'float32', f64: 'float64', empty: 'float64' };
    for (const [k, t] of arrays) {
      const want = [np[k], t.shape, Buffer.from(tensorBytes(t)).toString('hex')];
      expect(got[k], k).toEqual(want);
      expect(got['ours.npz'][k], `npz ${k}`).toEqual(want);
      expect(got['ours_c.npz'][k], `npz compressed ${k}`).toEqual(want);
    }
  });

  it('bad .npy files fail with an Error naming the file', async () => {
    const bad = join(tmp, 'bad.npy');
    writeFileSync(bad, Buffer.from('not numpy at all'));
    await expect(loadNpy(bad)).rejects.toThrow(/bad\.npy.*magic/);
    const trunc = join(tmp, 'trunc.npy');
    const { readFileSync } = await import('node:fs');
    writeFileSync(trunc, readFileSync(join(tmp, 'f32.npy')).subarray(0, 140));
    await expect(loadNpy(trunc)).rejects.toThrow(/trunc\.npy.*(truncated|more bytes)/);
    await expect(loadNpz(bad)).rejects.toThrow(/bad\.npy.*zip/);
  });
});

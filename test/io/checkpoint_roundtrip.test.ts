// saveCheckpoint -> Python torch.load -> torch.save -> loadCheckpoint gives identical tensors and meta;
// atomic writes; safetensors round trip.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, loadSafetensors, saveCheckpoint, saveSafetensors, tensor, Tensor } from '../../dist/index.js';
import { deepDiff } from '../support/deep_equal.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';
import { HAVE_TORCH, PY_DUMP, readDump, runPython, sameBytes, tensorBytes } from '../support/torch_ref.js';

const tmp = mkdtempSync(join(tmpdir(), 'ibq-rt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function allDtypes(): Map<string, Tensor> {
  const f32 = Float32Array.from({ length: 12 }, (_, i) => (i - 5) * 1.37);
  return new Map<string, Tensor>([
    ['f32', tensor(f32, [3, 4])],
    ['f64', tensor(Float64Array.from(f32, (x) => x / 3), [12])],
    ['f16', tensor(Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7e00, 0x8000]), [2, 3], { dtype: 'float16', raw: true })],
    ['bf16', tensor(Uint16Array.from([0x3f80, 0xc000, 0x7f7f, 0x0001]), [4], { dtype: 'bfloat16', raw: true })],
    ['i64', tensor(BigInt64Array.from([-(2n ** 62n), 0n, 2n ** 62n]), [3], { dtype: 'int64' })],
    ['i32', tensor(Int32Array.from([-7, 2147483647]), [2])],
    ['i8', tensor(Int8Array.from([-128, 127]), [2])],
    ['u8', tensor(Uint8Array.from([0, 255, 7]), [3, 1])],
    ['bool', tensor([true, false, true], [3], { dtype: 'bool' })],
    ['scalar', tensor([2.5], [])],
    ['empty', tensor([], [0, 4])],
    ['ключ.名前', tensor([1, 2], [2])],
  ]);
}

describe.skipIf(!HAVE_TORCH)('saveCheckpoint is readable by torch.load', () => {
  it('every dtype, 0-d, empty and non-ASCII keys come back bit-exact, key order kept', async () => {
    const path = join(tmp, 'dtypes.ckpt');
    const sd = allDtypes();
    await saveCheckpoint(path, { stateDict: sd });
    const out = join(tmp, 'dtypes-ref');
    await runPython(
      PY_DUMP +
        `
import os, collections
os.makedirs(sys.argv[2], exist_ok=True)
obj = torch.load(sys.argv[1])
assert isinstance(obj['state_dict'], collections.OrderedDict)
dump(named(obj['state_dict'].items()), sys.argv[2])
`,
      [path, out],
    );
    const ref = readDump(out);
    expect(ref.map((r) => r.key)).toEqual([...sd.keys()]);
    for (const r of ref) {
      const t = sd.get(r.key)!;
      expect(r.dtype, r.key).toBe(t.dtype);
      expect(r.shape, r.key).toEqual(t.shape);
      expect(sameBytes(tensorBytes(t), r.bytes), r.key).toBe(true);
    }
  });

  it.skipIf(!HAVE_FIXTURES)('tokenizer checkpoint: ours -> torch.load -> torch.save -> ours is identical', async () => {
    const orig = fixture('tokenizer', 'model.ckpt');
    const first = await loadCheckpoint(orig);
    const ours = join(tmp, 'tok.ckpt');
    const again = join(tmp, 'tok-again.ckpt');
    await saveCheckpoint(ours, first);
    const report = await runPython(
      `
import sys, torch, numpy as np
a = torch.load(sys.argv[1]); b = torch.load(sys.argv[2])
sa, sb = a['state_dict'], b['state_dict']
assert list(sa) == list(sb), 'key order'
for k in sb:
    assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape, k
    assert torch.equal(sa[k].view(-1).view(torch.uint8) if sa[k].numel() else sa[k], sb[k].view(-1).view(torch.uint8) if sb[k].numel() else sb[k]), k
h = a['hyper_parameters']
assert a['global_step'] == 1234 and h['np_scalar'] == 0.5
assert isinstance(h['np_array'], np.ndarray) and h['np_array'].dtype == np.int64 and list(h['np_array']) == [0, 1, 2, 3]
cfg = h['config']
from omegaconf import DictConfig
assert isinstance(cfg, DictConfig), type(cfg)
assert cfg.model._get_parent() is cfg, 'cycle'
st = a['optimizer_states'][0]['state']
assert list(st.keys()) == [0] and torch.equal(st[0]['exp_avg'], b['optimizer_states'][0]['state'][0]['exp_avg'])
torch.save(a, sys.argv[3])
print('ok')
`,
      [ours, orig, again],
    );
    expect(report.trim()).toBe('ok');
    const second = await loadCheckpoint(again);
    expect(deepDiff([...second.stateDict], [...first.stateDict])).toBeUndefined();
    expect(deepDiff(second.meta, first.meta)).toBeUndefined();
    const cfg = (second.meta as any).hyper_parameters.config;
    expect(cfg.state._content.model.state._parent).toBe(cfg);
  });

  it('meta values survive torch.load -> torch.save (numbers, strings, nesting, Maps, typed arrays, shared tensors)', async () => {
    const shared = tensor([1, 2, 3], [3]);
    const cyc: unknown[] = ['x'];
    cyc.push(cyc);
    const meta = {
      n: 42, f: 0.25, neg: -3, big: 2n ** 70n, s: 'héllo', b: true, nul: null, list: [1, 'a', [2, [3]]],
      nested: { a: { b: { t: tensor([5], [1], { dtype: 'int64' }) } } }, intKeys: new Map<unknown, unknown>([[0, 'a'], [7, shared]]),
      arr: Float64Array.from([1.5, -2]), ids: BigInt64Array.from([1n, 2n]), twice: [shared, shared], cyc,
      set: new Set(['q']),
    };
    const a = join(tmp, 'meta.ckpt');
    const b = join(tmp, 'meta-again.ckpt');
    await saveCheckpoint(a, { stateDict: new Map([['w', tensor([1], [1])]]), meta });
    await runPython(`import sys, torch; o = torch.load(sys.argv[1]); assert o['intKeys'][7] is o['twice'][0] is o['twice'][1]; assert o['cyc'][1] is o['cyc']; torch.save(o, sys.argv[2])`, [a, b]);
    const back = await loadCheckpoint(b);
    expect(deepDiff(back.meta, meta)).toBeUndefined();
    expect((back.meta as any).twice[0]).toBe((back.meta as any).twice[1]);
  });

  it('is atomic: a failing save leaves the earlier file intact and no temporary file', async () => {
    const dir = join(tmp, 'atomic');
    rmSync(dir, { recursive: true, force: true });
    const path = join(dir, 'model.ckpt');
    await expect(saveCheckpoint(path, { stateDict: allDtypes() })).rejects.toThrow(/atomic/); // no folder
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir);
    await saveCheckpoint(path, { stateDict: allDtypes() });
    const before = readFileSync(path);
    await expect(saveCheckpoint(path, { stateDict: allDtypes(), meta: { bad: () => 1 } })).rejects.toThrow(/meta\.bad|root\.bad/);
    const dead = tensor([1], [1]);
    dead.dispose();
    await expect(saveCheckpoint(path, { stateDict: new Map([['w', dead]]) })).rejects.toThrow(/disposed/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(dir)).toEqual(['model.ckpt']);
    const { stateDict } = await loadCheckpoint(path);
    expect(deepDiff([...stateDict], [...allDtypes()])).toBeUndefined();
  });
});

describe('safetensors round trip', () => {
  it('saveSafetensors -> loadSafetensors is identical (every dtype, metadata kept)', async () => {
    const path = join(tmp, 'x.safetensors');
    await saveSafetensors(path, allDtypes(), { format: 'pt' });
    const back = await loadSafetensors(path);
    expect(deepDiff([...back], [...allDtypes()])).toBeUndefined();
    const { readSafetensorsMetadata } = await import('../../dist/index.js');
    expect(await readSafetensorsMetadata(path)).toEqual({ format: 'pt' });
    const raw = readFileSync(path);
    expect(Number(raw.readBigUInt64LE(0)) % 8).toBe(0);
  });

  it('rejects headers whose offsets lie outside the file', async () => {
    const path = join(tmp, 'bad.safetensors');
    const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(path, Buffer.concat([len, header, Buffer.alloc(8)]));
    await expect(loadSafetensors(path)).rejects.toThrow(/bad\.safetensors.*'w'.*outside/);
    expect(existsSync(path)).toBe(true);
  });
});

// Torture files made by /usr/bin/python3 + torch: every dtype of the table, 0-d and empty tensors,
// transposed views, storage offsets, shared storages, non-ASCII keys, pickle protocols 2 and 4, the
// legacy format, an OrderedDict-only file, unsupported dtypes, meta values, and malicious pickles.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, Opaque, PySlice, Tensor, UnsupportedTensor } from '../../dist/index.js';
import { HAVE_TORCH, PY_DUMP, readDump, runPython, sameBytes, tensorBytes, type RefTensor } from '../support/torch_ref.js';

const tmp = mkdtempSync(join(tmpdir(), 'ibq-torture-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const f = (name: string) => join(tmp, name);

const GENERATE = PY_DUMP + `
import collections, os, argparse, pathlib, pickle, numpy as np
out = sys.argv[1]
g = torch.Generator().manual_seed(0)
def rnd(shape, dtype):
    x = torch.randn(shape, generator=g) * 50
    if dtype == torch.bool: return x > 0
    return x.to(dtype)
sd = {}
for dt in [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool]:
    sd['t_' + str(dt).replace('torch.', '')] = rnd((3, 5), dt)
sd['zero_d'] = torch.tensor(3.25)
sd['empty'] = torch.empty(0, 3)
sd['empty_int'] = torch.empty(4, 0, dtype=torch.int64)
base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
sd['base'] = base
sd['transposed'] = base.t()
sd['offset_rows'] = base[2:5]
sd['column'] = base[:, 3]
sd['strided'] = base[::2, 1::3]
sd['shared_view'] = base.view(10, 6)
sd['权重.ünï'] = torch.tensor([1.0, -2.0])
sd['emoji.😀'] = torch.tensor([7], dtype=torch.int32)
sd['nan_inf'] = torch.tensor([float('nan'), float('inf'), -float('inf'), -0.0])
dump(named(sd.items()), out)
torch.save(sd, out + '/dtypes.pt')
torch.save(sd, out + '/dtypes_p4.pt', pickle_protocol=4)
torch.save(sd, out + '/dtypes_legacy.pt', _use_new_zipfile_serialization=False)
od = collections.OrderedDict((k, sd[k]) for k in ['t_float32', 'base', 'zero_d', 'transposed'])
torch.save(od, out + '/ordered.pt')
torch.save({'state_dict': {'w': torch.ones(2)}, 'extra': {'shorts': torch.arange(3, dtype=torch.int16), 'cplx': torch.ones(2, dtype=torch.complex64)}}, out + '/unsupported_meta.pt')
torch.save({'state_dict': {'w': torch.ones(2), 'bad': torch.arange(3, dtype=torch.int16)}}, out + '/unsupported_sd.pt')
shared = torch.zeros(4)
meta = {'ints': [0, -1, 255, 65536, -2**31, 2**40, 2**70, -2**70], 'floats': [0.5, -1e300, float('inf')],
        'strs': ['', 'a', 'ü权'], 'none': None, 'flags': (True, False), 'bytes': b'\\x00\\xffab',
        'set': {1, 2}, 'frozen': frozenset(['x']), 'slice': slice(1, 10, 2), 'size': torch.Size([2, 3]),
        'device': torch.device('cpu'), 'dd': collections.defaultdict(list, {'a': [1]}),
        'od': collections.OrderedDict([('z', 1), ('a', 2)]), 'ns': argparse.Namespace(lr=0.1),
        'path': pathlib.PurePosixPath('/x/y'), 'np_i': np.int64(-5), 'np_b': np.bool_(True), 'np_f32': np.float32(1.5),
        'np_2d': np.arange(6, dtype=np.float32).reshape(2, 3), 'np_f': np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
        'np_u8': np.array([1, 2, 250], dtype=np.uint8), 'int_keys': {1: 'one', 2: 'two'}, 'tuple_key': {(1, 2): 'x'},
        'shared': [shared, shared], 'nested_tensor': {'deep': [{'t': torch.arange(4)}]}, 'param': torch.nn.Parameter(torch.ones(2))}
lst = [1]; lst.append(lst)
meta['cycle'] = lst
torch.save({'state_dict': {'w': torch.ones(2)}, **meta}, out + '/meta.pt')
# malicious pickles: calls that must never run
marker = out + '/MARKER'
class Evil:
    def __init__(self, fn, arg): self.fn, self.arg = fn, arg
    def __reduce__(self): return (self.fn, (self.arg,))
torch.save({'state_dict': {}, 'x': Evil(os.system, 'touch ' + marker)}, out + '/evil_system.pt')
torch.save({'x': Evil(eval, "open(%r, 'w').write('x')" % marker)}, out + '/evil_eval.pt')
torch.save({'x': Evil(os.system, 'touch ' + marker)}, out + '/evil_legacy.pt', _use_new_zipfile_serialization=False)
`;

let ref: RefTensor[] = [];
beforeAll(async () => {
  if (!HAVE_TORCH) return;
  await runPython(GENERATE, [tmp]);
  ref = readDump(tmp);
});

function expectMatchesRef(sd: Map<string, Tensor>, keys = ref.map((r) => r.key)) {
  expect([...sd.keys()]).toEqual(keys);
  for (const key of keys) {
    const r = ref.find((x) => x.key === key)!;
    const t = sd.get(key)!;
    expect(t.dtype, key).toBe(r.dtype);
    expect(t.shape, key).toEqual(r.shape);
    expect(sameBytes(tensorBytes(t), r.bytes), `${key} bytes`).toBe(true);
  }
}

describe.skipIf(!HAVE_TORCH)('torture checkpoints from torch.save', () => {
  for (const file of ['dtypes.pt', 'dtypes_p4.pt', 'dtypes_legacy.pt']) {
    it(`${file}: every dtype, views, offsets, shared storages, non-ASCII keys bit-exact`, async () => {
      const ck = await loadCheckpoint(f(file));
      expect(ck.meta).toEqual({});
      expectMatchesRef(ck.stateDict);
      expect(ck.stateDict.get('zero_d')!.shape).toEqual([]);
      expect(Array.from(ck.stateDict.get('transposed')!.dataSync())).toEqual(
        Array.from({ length: 60 }, (_, i) => (i % 6) * 10 + Math.floor(i / 6)),
      );
    });
  }

  it('an OrderedDict-only file keeps its key order', async () => {
    const ck = await loadCheckpoint(f('ordered.pt'));
    expectMatchesRef(ck.stateDict, ['t_float32', 'base', 'zero_d', 'transposed']);
  });

  it('unsupported dtypes in meta load as placeholders that fail on use, naming key and dtype', async () => {
    const ck = await loadCheckpoint(f('unsupported_meta.pt'));
    expect([...ck.stateDict.keys()]).toEqual(['w']);
    const extra = ck.meta.extra as Record<string, UnsupportedTensor>;
    expect(extra.shorts).toBeInstanceOf(UnsupportedTensor);
    expect(extra.shorts.shape).toEqual([3]);
    expect(() => extra.shorts.dataSync()).toThrow(/meta\.extra\.shorts.*ShortStorage/);
    expect(() => extra.cplx.dtype).toThrow(/meta\.extra\.cplx.*ComplexFloatStorage/);
  });

  it('an unsupported dtype in the state_dict fails the load, naming key and dtype', async () => {
    await expect(loadCheckpoint(f('unsupported_sd.pt'))).rejects.toThrow(/unsupported_sd\.pt.*state_dict\['bad'\].*ShortStorage/);
  });

  it('meta: Python values map to JS values; shared references and cycles are kept', async () => {
    const m = (await loadCheckpoint(f('meta.pt'))).meta as any;
    expect(m.ints).toEqual([0, -1, 255, 65536, -(2 ** 31), 2 ** 40, 2n ** 70n, -(2n ** 70n)]);
    expect(m.floats).toEqual([0.5, -1e300, Infinity]);
    expect(m.strs).toEqual(['', 'a', 'ü权']);
    expect(m.none).toBeNull();
    expect(m.flags).toEqual([true, false]);
    expect(Array.from(m.bytes)).toEqual([0, 255, 97, 98]);
    expect(m.set).toEqual(new Set([1, 2]));
    expect(m.frozen).toEqual(new Set(['x']));
    expect(m.slice).toBeInstanceOf(PySlice);
    expect([m.slice.start, m.slice.stop, m.slice.step]).toEqual([1, 10, 2]);
    expect(m.size).toEqual([2, 3]);
    expect(m.device).toBe('cpu');
    expect(m.dd).toEqual({ a: [1] });
    expect(Object.keys(m.od)).toEqual(['z', 'a']);
    expect(m.ns).toBeInstanceOf(Opaque);
    expect(m.ns.__class__).toBe('argparse.Namespace');
    expect(m.ns.state).toEqual({ lr: 0.1 });
    expect(m.path.__class__).toBe('pathlib.PurePosixPath');
    expect(m.np_i).toBe(-5);
    expect(m.np_b).toBe(true);
    expect(m.np_f32).toBe(1.5);
    expect(m.np_2d).toBeInstanceOf(Float32Array);
    expect(Array.from(m.np_2d)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(m.np_2d.shape).toEqual([2, 3]);
    expect(Array.from(m.np_f)).toEqual([0, 1, 2, 3, 4, 5]); // Fortran order converted to C order
    expect(m.np_u8).toEqual(new Uint8Array([1, 2, 250]));
    expect(m.int_keys).toBeInstanceOf(Map);
    expect(m.int_keys.get(2)).toBe('two');
    expect(m.tuple_key).toBeInstanceOf(Map);
    expect(m.shared[0]).toBeInstanceOf(Tensor);
    expect(m.shared[0]).toBe(m.shared[1]);
    expect(Array.from(m.nested_tensor.deep[0].t.dataSync() as BigInt64Array, Number)).toEqual([0, 1, 2, 3]);
    expect(Array.from(m.param.dataSync())).toEqual([1, 1]);
    expect(m.cycle[0]).toBe(1);
    expect(m.cycle[1]).toBe(m.cycle);
  });

  for (const file of ['evil_system.pt', 'evil_eval.pt', 'evil_legacy.pt']) {
    it(`${file}: a pickle calling os.system / eval runs nothing`, async () => {
      const ck = await loadCheckpoint(f(file));
      const x = ck.meta.x as Opaque;
      expect(x).toBeInstanceOf(Opaque);
      expect(x.__class__).toMatch(/^(posix\.system|builtins\.eval)$/);
      expect(String(x.args[0])).toMatch(/MARKER/);
      expect(existsSync(f('MARKER'))).toBe(false);
    });
  }
});

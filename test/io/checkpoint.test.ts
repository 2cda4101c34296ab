// loadCheckpoint / loadSafetensors on the shared fixtures, bit-exact against /usr/bin/python3 torch.load.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, loadSafetensors, Opaque, Tensor } from '../../dist/index.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';
import { HAVE_TORCH, PY_DUMP, readDump, runPython, sameBytes, tensorBytes } from '../support/torch_ref.js';

const tmp = mkdtempSync(join(tmpdir(), 'ibq-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Dumps the state_dict (or the whole dict) of a checkpoint with torch.load; returns the reference. */
async function torchStateDict(path: string, name: string) {
  const out = join(tmp, name);
  await runPython(
    PY_DUMP +
      `
import os
os.makedirs(sys.argv[2], exist_ok=True)
obj = torch.load(sys.argv[1], map_location='cpu')
sd = obj['state_dict'] if 'state_dict' in obj else obj
dump(named(sd.items()), sys.argv[2])
`,
    [path, out],
  );
  return readDump(out);
}

async function expectStateDictMatches(path: string, name: string) {
  const ck = await loadCheckpoint(path);
  const ref = await torchStateDict(path, name);
  expect([...ck.stateDict.keys()]).toEqual(ref.map((r) => r.key));
  let checked = 0;
  for (const r of ref) {
    const t = ck.stateDict.get(r.key)!;
    expect(t, r.key).toBeInstanceOf(Tensor);
    expect(t.shape, r.key).toEqual(r.shape);
    expect(t.dtype, r.key).toBe(r.dtype);
    expect(sameBytes(tensorBytes(t), r.bytes), `${r.key} bytes`).toBe(true);
    checked++;
  }
  return { ck, checked };
}

describe.skipIf(!HAVE_FIXTURES || !HAVE_TORCH)('loadCheckpoint on the fixtures', () => {
  it('tokenizer/model.ckpt: state_dict bit-exact and in file order, meta as Python has it', async () => {
    const { ck, checked } = await expectStateDictMatches(fixture('tokenizer', 'model.ckpt'), 'tok');
    expect(checked).toBe(380);
    const m = ck.meta as any;
    expect(m.global_step).toBe(1234);
    expect(m.epoch).toBe(7);
    expect(m.hyper_parameters.np_scalar).toBe(0.5);
    expect(Array.from(m.hyper_parameters.np_array as BigInt64Array, Number)).toEqual([0, 1, 2, 3]);
    const cfg = m.hyper_parameters.config;
    expect(cfg).toBeInstanceOf(Opaque);
    expect(cfg.__class__).toBe('omegaconf.dictconfig.DictConfig');
    const child = cfg.state._content.model;
    expect(child.__class__).toBe('omegaconf.dictconfig.DictConfig');
    expect(child.state._parent).toBe(cfg); // the cycle is a shared reference
    expect(m.hyper_parameters.args.__class__).toBe('argparse.Namespace');
    const opt = m.optimizer_states[0].state;
    expect(opt).toBeInstanceOf(Map); // int keys, as torch's optimizer state has them
    const st = opt.get(0);
    expect(st.exp_avg).toBeInstanceOf(Tensor);
    expect(st.step).toBeInstanceOf(Tensor);
    expect(Array.from(st.step.dataSync())).toEqual([1234]);
    expect(m.optimizer_states[0].param_groups[0].betas).toEqual([0.5, 0.9]);
    const cb = Object.values(m.callbacks)[0] as any;
    expect(cb.dirpath.__class__).toBe('pathlib.PurePosixPath');
    expect(Array.from(cb.kth_value.dataSync())).toEqual([Infinity]);
  });

  it('gpt/model.ckpt: state_dict bit-exact', async () => {
    const { ck } = await expectStateDictMatches(fixture('gpt', 'model.ckpt'), 'gpt');
    expect((ck.meta as any).global_step).toBe(1234);
  });

  it('metrics/fid_inception_weights.pth: a plain float16 state_dict', async () => {
    const { ck, checked } = await expectStateDictMatches(fixture('metrics', 'fid_inception_weights.pth'), 'fid');
    expect(checked).toBe(566);
    expect(ck.meta).toEqual({});
    expect(new Set([...ck.stateDict.values()].map((t) => t.dtype))).toEqual(new Set(['float16', 'int64']));
  });
});

describe.skipIf(!HAVE_FIXTURES || !HAVE_TORCH)('loadSafetensors on the fixtures', () => {
  for (const c of ['ibq_quantizer', 'vq_quantizer', 'tokenizer', 'gpt', 'metrics']) {
    it(`${c}/golden.safetensors matches an independent numpy parse`, async () => {
      const path = fixture(c, 'golden.safetensors');
      const out = join(tmp, `st-${c}`);
      await runPython(
        PY_DUMP +
          `
import os, struct, numpy as np
os.makedirs(sys.argv[2], exist_ok=True)
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
dt = {'F32': torch.float32, 'F64': torch.float64, 'F16': torch.float16, 'BF16': torch.bfloat16, 'I64': torch.int64,
      'I32': torch.int32, 'I8': torch.int8, 'U8': torch.uint8, 'BOOL': torch.bool}
items = []
for k, e in hdr.items():
    if k == '__metadata__': continue
    b, en = e['data_offsets']
    t = torch.frombuffer(bytearray(raw[8 + n + b: 8 + n + en]), dtype=torch.uint8).view(dt[e['dtype']]).reshape(e['shape']) if en > b else torch.empty(e['shape'], dtype=dt[e['dtype']])
    items.append((k, t))
dump(named(items), sys.argv[2])
`,
        [path, out],
      );
      const ref = readDump(out);
      const got = await loadSafetensors(path);
      expect([...got.keys()].sort()).toEqual(ref.map((r) => r.key).sort());
      for (const r of ref) {
        const t = got.get(r.key)!;
        expect(t.shape, r.key).toEqual(r.shape);
        expect(t.dtype, r.key).toBe(r.dtype);
        expect(sameBytes(tensorBytes(t), r.bytes), r.key).toBe(true);
      }
    });
  }
});

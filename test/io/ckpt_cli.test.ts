// `ibq ckpt inspect` and `ibq ckpt convert`, and the state-dict helpers they use (prefixes, EMA mapping).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { addPrefix, emaStateDict, loadCheckpoint, loadSafetensors, stripPrefix, tensor, type Tensor } from '../../dist/index.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';
import { HAVE_TORCH, runPython, sameBytes, tensorBytes } from '../support/torch_ref.js';
import { run } from '../support/run.js';

const tmp = mkdtempSync(join(tmpdir(), 'ibq-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const BIN = resolve(__dirname, '..', '..', 'bin', 'ibq.js');
const ibq = (...args: string[]) => run(process.execPath, [BIN, ...args], { timeout: 120_000 });

describe.skipIf(!HAVE_FIXTURES || !HAVE_TORCH)('ibq ckpt', () => {
  const tok = fixture('tokenizer', 'model.ckpt');
  let pyShapes: [string, number[]][] = [];
  beforeAll(async () => {
    pyShapes = JSON.parse(await runPython(`import sys, json, torch; sd = torch.load(sys.argv[1])['state_dict']; print(json.dumps([[k, list(v.shape)] for k, v in sd.items()]))`, [tok]));
  });

  it('inspect lists every state_dict key with its shape (text and --json), meta summarized with cycles as refs', async () => {
    const text = await ibq('ckpt', 'inspect', tok);
    expect(text.status, text.stderr).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines[0]).toMatch(/380 tensors/);
    for (const [k, shape] of pyShapes) {
      expect(lines.some((l) => l.trim().startsWith(k + ' ') && l.includes(`[${shape.join(', ')}]`)), k).toBe(true);
    }
    const json = await ibq('ckpt', 'inspect', tok, '--json');
    expect(json.status, json.stderr).toBe(0);
    const out = JSON.parse(json.stdout);
    expect(out.tensors.map((t: { key: string; shape: number[] }) => [t.key, t.shape])).toEqual(pyShapes);
    expect(out.tensors[0].dtype).toBe('float32');
    expect(out.totalBytes).toBe(out.tensors.reduce((a: number, t: { bytes: number }) => a + t.bytes, 0));
    expect(out.meta.global_step).toBe(1234);
    const model = out.meta.hyper_parameters.config.state._content.model;
    expect(model.state._parent).toEqual({ $ref: 'meta.hyper_parameters.config' });
  });

  it('inspect of a missing file fails with a message naming it', async () => {
    const r = await ibq('ckpt', 'inspect', join(tmp, 'missing.ckpt'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('missing.ckpt');
  });

  it('convert .ckpt -> .safetensors --ema takes model_ema weights; back to .ckpt --prefix adds the prefix', async () => {
    const st = join(tmp, 'tok_ema.safetensors');
    const r = await ibq('ckpt', 'convert', tok, st, '--ema');
    expect(r.status, r.stderr).toBe(0);
    const src = (await loadCheckpoint(tok)).stateDict;
    const got = await loadSafetensors(st);
    expect([...got.keys()].some((k) => k.startsWith('model_ema.'))).toBe(false);
    const w = got.get('encoder.conv_in.weight')!;
    expect(sameBytes(tensorBytes(w), tensorBytes(src.get('model_ema.encoderconv_inweight')!))).toBe(true);
    expect(sameBytes(tensorBytes(w), tensorBytes(src.get('encoder.conv_in.weight')!))).toBe(false);
    const back = join(tmp, 'back.ckpt');
    const r2 = await ibq('ckpt', 'convert', st, back, '--prefix', 'first_stage_model.');
    expect(r2.status, r2.stderr).toBe(0);
    const keys = JSON.parse(await runPython(`import sys, json, torch; print(json.dumps(list(torch.load(sys.argv[1])['state_dict'])))`, [back]));
    expect(keys).toEqual([...got.keys()].map((k) => 'first_stage_model.' + k));
  });
});

describe('state-dict helpers', () => {
  const t = (v: number) => tensor([v], [1]);
  it('stripPrefix / addPrefix', () => {
    const sd = new Map<string, Tensor>([['transformer.a', t(1)], ['transformer.b.c', t(2)], ['other', t(3)]]);
    expect([...stripPrefix(sd, 'transformer.').keys()]).toEqual(['a', 'b.c']);
    expect([...stripPrefix(sd, 'transformer.', { keepOthers: true }).keys()]).toEqual(['a', 'b.c', 'other']);
    expect([...addPrefix(stripPrefix(sd, 'transformer.'), 'first_stage_model.').keys()]).toEqual(['first_stage_model.a', 'first_stage_model.b.c']);
    expect(() => stripPrefix(new Map([['p.a', t(1)], ['a', t(2)]]), 'p.', { keepOthers: true })).toThrow(/collide/);
  });

  it('emaStateDict maps model_ema.<name without dots> by parameter name, not key order', () => {
    const w = t(1), b = t(2), ew = t(10), eb = t(20), buf = t(5);
    // EMA keys deliberately in the opposite order of the parameters
    const sd = new Map<string, Tensor>([
      ['enc.w', w], ['enc.b', b], ['enc.running', buf],
      ['model_ema.decay', t(0.999)], ['model_ema.num_updates', t(3)], ['model_ema.encb', eb], ['model_ema.encw', ew],
    ]);
    const out = emaStateDict(sd, ['enc.w', 'enc.b']);
    expect([...out.keys()]).toEqual(['enc.w', 'enc.b', 'enc.running']);
    expect(out.get('enc.w')).toBe(ew);
    expect(out.get('enc.b')).toBe(eb);
    expect(out.get('enc.running')).toBe(buf);
    expect(() => emaStateDict(sd, ['enc.w', 'enc.b', 'dec.w'])).toThrow(/no EMA weights for 1 parameter.*model_ema\.decw/);
    expect(() => emaStateDict(new Map([['model_ema.abc', t(1)]]), ['a.bc', 'ab.c'])).toThrow(/'a\.bc' and 'ab\.c' both map to 'model_ema\.abc'/);
  });
});

// Inputs that used to give silent wrong results or crash: int64 bigints out of range, non-finite z in the
// standalone quantizers, snake_case / unknown sample options, and `ibq sample --per-class` beyond memory.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { generate, IBQuantizer, tensor, Tokenizer, Transformer, VectorQuantizer } from '../../dist/index.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';
import { run } from '../support/run.js';

const tmp = mkdtempSync(join(tmpdir(), 'ibq-inputs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const BIN = resolve(__dirname, '..', '..', 'bin', 'ibq.js');

describe('tensor(): int64 from bigints', () => {
  it('keeps the int64 limits exactly and rejects values beyond them, naming data[i]', () => {
    const lo = -(2n ** 63n), hi = 2n ** 63n - 1n;
    expect(Array.from(tensor([lo, 0n, hi], [3], { dtype: 'int64' }).dataSync() as BigInt64Array)).toEqual([lo, 0n, hi]);
    expect(() => tensor([0n, hi + 1n], [2], { dtype: 'int64' })).toThrow(RangeError);
    expect(() => tensor([0n, hi + 1n], [2], { dtype: 'int64' })).toThrow(/data\[1\]: int64 takes integers in \[-2\^63, 2\^63-1\], got 9223372036854775808n/);
    expect(() => tensor([lo - 1n], [1])).toThrow(/data\[0\]: int64/);
  });
});

describe('quantizers reject non-finite z like Tokenizer.encode', () => {
  const z = (bad: number) => {
    const data = new Float32Array(2 * 8 * 2 * 2).fill(0.1);
    data[5] = bad;
    return tensor(data, [2, 8, 2, 2]);
  };
  for (const [name, make] of [
    ['IBQuantizer', () => new IBQuantizer({ n_embed: 16, embed_dim: 8 }, { seed: 1 })],
    ['VectorQuantizer', () => new VectorQuantizer({ n_embed: 16, embed_dim: 8 }, { seed: 1 })],
  ] as const) {
    it(`${name}.forward`, async () => {
      const q = make();
      for (const bad of [NaN, Infinity, -Infinity]) {
        await expect(q.forward(z(bad))).rejects.toThrow(/^z: contains NaN or infinite values$/);
      }
      const ok = await q.forward(z(0.3));
      expect(ok.indices.shape).toEqual([2, 2, 2]);
      q.dispose();
    });
  }
});

describe('sample options: unknown keys are errors', () => {
  const tr = Transformer.create({ vocab_size: 16, block_size: 4, n_layer: 1, n_head: 2, n_embd: 16, class_num: 3, multiple_of: 16 }, { seed: 0 });
  it('Transformer.sample names the key and the camelCase option', async () => {
    await expect(tr.sample({ labels: [0], cfg_scale: 2 } as never)).rejects.toThrow(TypeError);
    await expect(tr.sample({ labels: [0], cfg_scale: 2 } as never)).rejects.toThrow(/options\.cfg_scale: unknown option \(did you mean cfgScale\?\)/);
    await expect(tr.sample({ labels: [0], top_k: 2 } as never)).rejects.toThrow(/options\.top_k: .*did you mean topK\?/);
    await expect(tr.sample({ labels: [0], temprature: 2 } as never)).rejects.toThrow(/options\.temprature: unknown option \(expected one of labels, cfgScale/);
    expect((await tr.sample({ labels: [0, 1], greedy: true, seed: 1 })).shape).toEqual([2, 4]);
  });
  it('generate() too, including its own options', async () => {
    const tokenizer = { decode: async () => tensor(new Float32Array(3 * 4 * 4), [1, 3, 4, 4]), config: { n_embed: 16 } };
    await expect(generate({ transformer: tr, tokenizer, labels: [0], batch_size: 2 } as never)).rejects.toThrow(/options\.batch_size: unknown option \(did you mean batchSize\?\)/);
    await expect(generate({ transformer: tr, tokenizer, labels: [0], top_p: 0.5 } as never)).rejects.toThrow(/options\.top_p: .*did you mean topP\?/);
  });
});

describe.skipIf(!HAVE_FIXTURES)('ibq sample --per-class beyond memory', () => {
  it('exits with an error naming --per-class before allocating (no OOM crash, nothing written)', async () => {
    const out = join(tmp, 'huge');
    const r = await run(process.execPath, [BIN, 'sample', '--ar', fixture('gpt', 'model.ckpt'), '--per-class', '1e9', '--out', out], { timeout: 60_000 });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--per-class: 1000000000 samples for each of 10 class\(es\) .* use at most \d+ per class/);
    expect(() => readdirSync(out)).toThrow(); // the output folder was not even created
  });
});

describe('config names and input dtypes', () => {
  it('unknown preset names are reported as such (not as a missing YAML file)', () => {
    expect(() => Tokenizer.create('IBQ-999' as never)).toThrow(/config: unknown preset 'IBQ-999', expected one of IBQ-1024, IBQ-8192, IBQ-16384, IBQ-262144 \(or a YAML config path\)/);
    expect(() => Transformer.create('Q')).toThrow(/config: unknown preset 'Q', expected one of B, L, XL, XXL \(or a YAML config path\)/);
    expect(() => Transformer.create(join(tmp, 'missing.yaml'))).toThrow(/missing\.yaml/); // a path stays a path
  });

  it('Tokenizer.encode/forward reject float64 images naming x and float32', async () => {
    const tok = Tokenizer.create({
      ddconfig: { z_channels: 32, resolution: 8, ch: 32, ch_mult: [1, 1], num_res_blocks: 1 }, n_embed: 16, embed_dim: 8,
    }, { seed: 0 });
    const x64 = tensor(new Float64Array(3 * 8 * 8).fill(0.25), [1, 3, 8, 8], { dtype: 'float64' });
    await expect(tok.encode(x64)).rejects.toThrow(/^x: expected a float32 tensor \(the model's dtype\), got float64/);
    await expect(tok.forward(x64)).rejects.toThrow(TypeError);
    const { indices } = await tok.encode(tensor(new Float32Array(3 * 8 * 8).fill(0.25), [1, 3, 8, 8]));
    expect(indices.shape).toEqual([1, 4, 4]);
    tok.dispose();
  });
});

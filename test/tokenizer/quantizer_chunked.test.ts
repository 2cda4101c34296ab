// The chunked IBQ quantizer path (quantizer_chunk): equal to the dense path (the reference) and to the official
// fixtures, at n_embed 262144 with several blocks of positions, with and without the entropy loss (float32;
// bfloat16 autocast: quantizer_chunked_bf16.test.ts); the blocked eval argmax (Tokenizer.encode) at 262144 codes.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import {
  IBQuantizer, Tokenizer, TokenizerTrainer, loadCheckpoint, loadSafetensors, tokenizerPreset, resolveTokenizerConfig, tensor, type Tensor,
} from '../../dist/index.js';
import { ints, maxAbsDiff, scalar } from '../support/compare.js';
import { densePair, latentCase, normals } from '../support/ibq_random.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';

const OUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;
const OUTPUTS = ['z_q', 'quant_loss', 'sample_entropy', 'avg_entropy', 'entropy_loss', 'total'] as const;

describe.skipIf(!HAVE_FIXTURES)('chunked IBQuantizer on the fixture ibq_quantizer (official IndexPropagationQuantize)', () => {
  it('reproduces outputs, indices and both gradients with 8 positions per block (4 blocks)', async () => {
    const g = await loadSafetensors(fixture('ibq_quantizer', 'golden.safetensors'));
    const q = new IBQuantizer({ n_embed: 64, embed_dim: 8, quantizer_chunk: 8 });
    await q.loadStateDict(new Map([['embedding.weight', g.get('embedding')!]]));
    const o = await q.forward(g.get('z')!);
    expect(ints(o.indices)).toEqual(ints(g.get('indices')!));
    for (const k of ['z_q', 'quant_loss', 'sample_entropy', 'avg_entropy', 'entropy_loss'] as const) {
      expect(maxAbsDiff(o[k], g.get(k)!), k).toBeLessThanOrEqual(OUT_TOL);
    }
    const r = await q.lossAndGrads(g.get('z')!, g.get('grad_out')!, { quant_loss_weight: 1.0, entropy_loss_weight: 0.05 });
    expect(maxAbsDiff(r.grads.get('z')!, g.get('grad_z')!)).toBeLessThanOrEqual(GRAD_TOL);
    expect(maxAbsDiff(r.grads.get('embedding.weight')!, g.get('grad_embedding')!)).toBeLessThanOrEqual(GRAD_TOL);
    expect(ints(r.outputs.indices)).toEqual(ints(g.get('indices')!));
  });

  it('validates quantizer_chunk in the options', () => {
    expect(() => new IBQuantizer({ n_embed: 8, embed_dim: 2, quantizer_chunk: 0 })).toThrow(RangeError);
    expect(() => new IBQuantizer({ n_embed: 8, embed_dim: 2, quantizer_chunk: 1.5 })).toThrow(/options\.quantizer_chunk/);
    expect(() => new IBQuantizer({ n_embed: 8, embed_dim: 2, quantizer_chunk: 'fast' as never })).toThrow(RangeError);
    expect(() => new IBQuantizer({ n_embed: 8, embed_dim: 2, quantizer_chunk: true as never })).toThrow(TypeError);
    expect(new IBQuantizer({ n_embed: 8, embed_dim: 2 }).options.quantizer_chunk).toBe('auto');
    const cfg = tokenizerPreset('IBQ-1024');
    expect(() => resolveTokenizerConfig({ ...cfg, quantizer_chunk: -1 })).toThrow(/config\.quantizer_chunk/);
    expect(() => resolveTokenizerConfig({ ...cfg, quantizer_chunk: 'fast' })).toThrow(/config\.quantizer_chunk/);
    expect(resolveTokenizerConfig({ ...cfg, quantizer_chunk: 16 }).quantizer_chunk).toBe(16);
    expect(resolveTokenizerConfig(cfg).quantizer_chunk).toBeUndefined(); // the official configs stay as they are
  });
});

describe('chunked IBQuantizer equals the dense path at n_embed 262144, embed_dim 256 (float32)', () => {
  const K = 262144, D = 256;
  const compare = async (a: IBQuantizer, b: IBQuantizer, z: Tensor, gradOut: Tensor) => {
    const opts = { quant_loss_weight: 1.0, entropy_loss_weight: 0.05 };
    const ra = await a.lossAndGrads(z, gradOut, opts);
    const rb = await b.lossAndGrads(z, gradOut, opts);
    expect(ints(rb.outputs.indices)).toEqual(ints(ra.outputs.indices));
    for (const k of OUTPUTS) expect(maxAbsDiff(rb.outputs[k], ra.outputs[k]), k).toBeLessThanOrEqual(OUT_TOL);
    for (const k of ['z', 'embedding.weight'] as const) {
      expect(maxAbsDiff(rb.grads.get(k)!, ra.grads.get(k)!), k).toBeLessThanOrEqual(GRAD_TOL);
    }
    return ra;
  };

  it('with the entropy loss, 300 positions (auto: blocks of 48): outputs, indices, gradients; forward', async () => {
    const [dense, chunked] = await densePair({ n_embed: K, embed_dim: D }, 3);
    const { z, gradOut } = latentCase([2, D, 10, 15], 11);
    const r = await compare(dense, chunked, z, gradOut);
    // the entropy terms are not trivial here (neither 0 nor log n_embed)
    expect(scalar(r.outputs.sample_entropy)).toBeGreaterThan(0.1);
    expect(scalar(r.outputs.avg_entropy)).toBeGreaterThan(1);
    // forward without gradients (inference job), 128 positions: 3 blocks
    const small = latentCase([2, D, 8, 8], 13).z;
    const a = await dense.forward(small), b = await chunked.forward(small);
    expect(ints(b.indices)).toEqual(ints(a.indices));
    for (const k of ['z_q', 'quant_loss', 'sample_entropy', 'avg_entropy', 'entropy_loss'] as const) {
      expect(maxAbsDiff(b[k], a[k]), k).toBeLessThanOrEqual(OUT_TOL);
    }
  }, 300_000);

  it('without the entropy loss, 128 positions in blocks of 32', async () => {
    const [dense, chunked] = await densePair({ n_embed: K, embed_dim: D, use_entropy_loss: false, quantizer_chunk: 32 }, 4);
    const { z, gradOut } = latentCase([2, D, 8, 8], 17);
    const r = await compare(dense, chunked, z, gradOut);
    expect(scalar(r.outputs.entropy_loss)).toBe(0);
  }, 300_000);
});

describe('Tokenizer at n_embed 262144: blocked eval argmax and the chunked forward', () => {
  it('encode (argmax in 4 blocks of 64 positions) gives the indices of the dense and chunked forward', async () => {
    const cfg = {
      ddconfig: { z_channels: 8, resolution: 16, ch: 32, ch_mult: [1], num_res_blocks: 1, attn_resolutions: [] },
      n_embed: 262144, embed_dim: 8, use_entropy_loss: true,
    };
    const tok = Tokenizer.create({ ...cfg, quantizer_chunk: 'dense' }, { seed: 5 });
    const tokc = Tokenizer.create(cfg); // auto: 256 positions * 262144 codes
    await tokc.loadStateDict(tok.stateDict());
    const x = tensor(normals(3 * 16 * 16, 21).map((v) => Math.tanh(v)), [1, 3, 16, 16]);
    const enc = await tok.encode(x);
    const fd = await tok.forward(x);
    const fc = await tokc.forward(x);
    expect(enc.indices.shape).toEqual([1, 16, 16]);
    expect(ints(enc.indices)).toEqual(ints(fd.indices));
    expect(ints(fc.indices)).toEqual(ints(fd.indices));
    // not a degenerate case: many different codes
    expect(new Set(ints(enc.indices)).size).toBeGreaterThan(30);
    for (const k of ['quant_loss', 'sample_entropy', 'avg_entropy', 'entropy_loss'] as const) {
      expect(maxAbsDiff(fc[k], fd[k]), k).toBeLessThanOrEqual(OUT_TOL);
    }
  }, 300_000);
});

describe.skipIf(!HAVE_FIXTURES)('tokenizer training step with the chunked quantizer (fixture tokenizer)', () => {
  it('generator loss, logs and codebook gradient equal the official values with 5 positions per block', async () => {
    const C = JSON.parse(readFileSync(fixture('tokenizer', 'case.json'), 'utf8'));
    const g = await loadSafetensors(fixture('tokenizer', 'golden.safetensors'));
    const ckpt = await loadCheckpoint(fixture('tokenizer', 'model.ckpt'));
    const tok = Tokenizer.create({
      ddconfig: C.ddconfig, n_embed: C.n_embed, embed_dim: C.embed_dim, beta: C.beta, use_entropy_loss: C.use_entropy_loss,
      entropy_temperature: C.entropy_temperature, sample_minimization_weight: C.sample_minimization_weight,
      batch_maximization_weight: C.batch_maximization_weight, quantizer_chunk: 5,
    });
    const t = TokenizerTrainer.create(tok, C.lossconfig);
    expect((await t.loadStateDict(ckpt.stateDict, { strict: true })).missing).toEqual([]);
    const gen = await t.lossAndGrads(g.get('x')!, {
      optimizerIdx: 0, globalStep: C.global_step, wrt: ['decoder.conv_out.weight', 'quantize.embedding.weight'],
    });
    expect(Math.abs(gen.loss - scalar(g.get('g_loss_total')!))).toBeLessThanOrEqual(OUT_TOL);
    for (const k of ['codebook_quant_loss', 'codebook_sample_entropy_loss', 'codebook_avg_entropy_loss', 'total_loss']) {
      expect(Math.abs(gen.log[`train/${k}`]! - scalar(g.get(`log/train/${k}`)!)), k).toBeLessThanOrEqual(OUT_TOL);
    }
    expect(maxAbsDiff(gen.grads.get('quantize.embedding.weight')!, g.get('grad_quantize_embedding')!)).toBeLessThanOrEqual(GRAD_TOL);
    expect(maxAbsDiff(gen.grads.get('decoder.conv_out.weight')!, g.get('grad_decoder_conv_out')!)).toBeLessThanOrEqual(GRAD_TOL);
  }, 300_000);
});

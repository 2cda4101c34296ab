// The training losses, logs and gradients of the official VQLPIPSWithDiscriminator
// (IBQ repo) on the `tokenizer` fixture, and LPIPS with the checkpoint's weights.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';

import {
  Tokenizer, TokenizerTrainer, loadCheckpoint, loadSafetensors, type Checkpoint, type Tensor, type TokenizerConfig,
} from '../../dist/index.js';
import { maxAbsDiff, scalar } from '../support/compare.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';

const OUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;

const C = HAVE_FIXTURES ? JSON.parse(readFileSync(fixture('tokenizer', 'case.json'), 'utf8')) : {};
const config = (): TokenizerConfig => ({
  ddconfig: C.ddconfig, n_embed: C.n_embed, embed_dim: C.embed_dim, beta: C.beta, use_entropy_loss: C.use_entropy_loss,
  entropy_temperature: C.entropy_temperature, sample_minimization_weight: C.sample_minimization_weight,
  batch_maximization_weight: C.batch_maximization_weight,
});

const G_LOGS = [
  'total_loss', 'codebook_quant_loss', 'codebook_entropy_loss', 'codebook_sample_entropy_loss', 'codebook_avg_entropy_loss',
  'codebook_loss', 'nll_loss', 'reconstruct_loss', 'perceptual_loss', 'd_weight', 'disc_factor', 'g_loss', 'unsacled_g_loss',
].map((k) => `train/${k}`);
const D_LOGS = ['disc_loss', 'logits_real', 'logits_fake', 'lecam_loss'].map((k) => `train/${k}`);

describe.skipIf(!HAVE_FIXTURES)('tokenizer training losses on the fixture (official VQLPIPSWithDiscriminator)', () => {
  let g: Map<string, Tensor>;
  let ckpt: Checkpoint;
  const errors: Record<string, number> = {};
  const trainer = async (lossconfig: Record<string, unknown>) => {
    const tok = Tokenizer.create(config());
    const t = TokenizerTrainer.create(tok, lossconfig, { useEma: true }); // the fixture holds model_ema.* (official use_ema: True)
    const r = await t.loadStateDict(ckpt.stateDict, { strict: true });
    expect(r.missing).toEqual([]);
    expect(t.perceptualLoaded).toBe(true);
    return t;
  };
  beforeAll(async () => {
    g = await loadSafetensors(fixture('tokenizer', 'golden.safetensors'));
    ckpt = await loadCheckpoint(fixture('tokenizer', 'model.ckpt'));
  });

  it('has the official training-checkpoint keys (loss.*, model_ema.* included) in the official order', async () => {
    const t = await trainer(C.lossconfig);
    expect([...t.stateDict().keys()]).toEqual([...ckpt.stateDict.keys()]);
  });

  it('generator loss, logs and gradients; then discriminator loss, logs and gradient (global step 10)', async () => {
    const t = await trainer(C.lossconfig);
    expect(t.training).toBe(true);
    const x = g.get('x')!;
    const gen = await t.lossAndGrads(x, {
      optimizerIdx: 0, globalStep: C.global_step, wrt: ['decoder.conv_out.weight', 'quantize.embedding.weight'],
    });
    errors.g_loss_total = Math.abs(gen.loss - scalar(g.get('g_loss_total')!));
    expect(errors.g_loss_total).toBeLessThanOrEqual(OUT_TOL);
    expect(Object.keys(gen.log)).toEqual(G_LOGS);
    for (const k of G_LOGS) {
      const e = Math.abs(gen.log[k]! - scalar(g.get(`log/${k}`)!));
      errors[`log/${k}`] = e;
      expect(e, k).toBeLessThanOrEqual(OUT_TOL);
    }
    errors.grad_decoder_conv_out = maxAbsDiff(gen.grads.get('decoder.conv_out.weight')!, g.get('grad_decoder_conv_out')!);
    errors.grad_quantize_embedding = maxAbsDiff(gen.grads.get('quantize.embedding.weight')!, g.get('grad_quantize_embedding')!);
    expect(errors.grad_decoder_conv_out).toBeLessThanOrEqual(GRAD_TOL);
    expect(errors.grad_quantize_embedding).toBeLessThanOrEqual(GRAD_TOL);

    const disc = await t.lossAndGrads(x, { optimizerIdx: 1, globalStep: C.global_step, wrt: ['loss.discriminator.main.0.weight'] });
    errors.d_loss_total = Math.abs(disc.loss - scalar(g.get('d_loss_total')!));
    expect(errors.d_loss_total).toBeLessThanOrEqual(OUT_TOL);
    expect(Object.keys(disc.log).sort()).toEqual([...D_LOGS, 'train/disc_factor'].sort());
    for (const k of D_LOGS) {
      const e = Math.abs(disc.log[k]! - scalar(g.get(`log/${k}`)!));
      errors[`log/${k}`] = e;
      expect(e, k).toBeLessThanOrEqual(OUT_TOL);
    }
    errors.grad_discriminator_main0 = maxAbsDiff(disc.grads.get('loss.discriminator.main.0.weight')!, g.get('grad_discriminator_main0')!);
    expect(errors.grad_discriminator_main0).toBeLessThanOrEqual(GRAD_TOL);

    // the adaptive weight: a trainer with gen_loss_weight unset on the same weights
    const ta = await trainer({ ...C.lossconfig, gen_loss_weight: null });
    const ad = await ta.lossAndGrads(x, { optimizerIdx: 0, globalStep: C.global_step });
    errors.adaptive_g_loss_total = Math.abs(ad.loss - scalar(g.get('adaptive_g_loss_total')!));
    errors.adaptive_d_weight = Math.abs(ad.log['train/d_weight']! - scalar(g.get('adaptive_d_weight')!));
    expect(errors.adaptive_g_loss_total).toBeLessThanOrEqual(OUT_TOL);
    expect(errors.adaptive_d_weight).toBeLessThanOrEqual(OUT_TOL);
  });

  it('LPIPS with the checkpoint weights reproduces lpips_value', async () => {
    const t = await trainer(C.lossconfig);
    const d = await t.lpips(g.get('lpips_a')!, g.get('lpips_b')!);
    expect(d.shape).toEqual([2, 1, 1, 1]);
    errors.lpips_value = maxAbsDiff(d, g.get('lpips_value')!);
    expect(errors.lpips_value).toBeLessThanOrEqual(OUT_TOL);
    console.log('tokenizer training fixture max abs errors:', JSON.stringify(errors));
  });

  it('bfloat16 autocast gives the float32 generator loss to bfloat16 precision, and a finite training step', async () => {
    const tok = Tokenizer.create(config());
    const t = TokenizerTrainer.create(tok, C.lossconfig, { autocast: 'bfloat16', useEma: true });
    await t.loadStateDict(ckpt.stateDict);
    const x = g.get('x')!;
    const gen = await t.lossAndGrads(x, { optimizerIdx: 0, globalStep: C.global_step });
    const ref = scalar(g.get('g_loss_total')!);
    // bfloat16 keeps 8 bits of mantissa: a relative error of a few 2^-8 over the network
    expect(Math.abs(gen.loss - ref) / ref).toBeLessThan(0.03);
    expect(Math.abs(gen.loss - ref)).toBeGreaterThan(0); // really ran in bfloat16
    const log = await t.step(x, { globalStep: C.global_step });
    expect(Number.isFinite(log['train/total_loss'])).toBe(true);
    expect(Number.isFinite(log['train/disc_loss'])).toBe(true);
  });

  it('rejects bad arguments with errors naming them', async () => {
    const tok = Tokenizer.create(config());
    expect(() => TokenizerTrainer.create(tok, { ...C.lossconfig, disc_loss: 'wgan' })).toThrow(/disc_loss/);
    const t = TokenizerTrainer.create(tok, C.lossconfig);
    await expect(t.step(g.get('x')!)).rejects.toThrow(/vgg16-397923af\.pth/);
    await t.loadPerceptual(fixture('tokenizer', 'model.ckpt'));
    await expect(t.lossAndGrads(g.get('x')!, { optimizerIdx: 0, globalStep: 0, wrt: ['nope.weight'] })).rejects.toThrow(/nope\.weight/);
    await expect(t.lossAndGrads(g.get('x')!, { optimizerIdx: 0, globalStep: 0, wrt: ['loss.perceptual_loss.lin0.model.1.weight'] }))
      .rejects.toThrow(/frozen/);
    const { tensor } = await import('../../dist/index.js');
    await expect(t.step(tensor(new Float32Array(2 * 3 * 16 * 16), [2, 3, 16, 16]))).rejects.toThrow(/at least 24x24/);
  });
});

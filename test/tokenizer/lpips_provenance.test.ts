// Checkpoints never pass off untrained LPIPS weights: a perceptual_weight 0 run stores none and says so;
// checkpoints record where their LPIPS weights came from; exports keep the tokenizer config.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, saveCheckpoint, tensor, Tokenizer, TokenizerTrainer } from '../../dist/index.js';
import { lpipsProvenance } from '../../dist/tokenizer/trainer_state.js';
import { run } from '../support/run.js';

const BIN = new URL('../../bin/ibq.js', import.meta.url).pathname;
const TOK = {
  ddconfig: { double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  n_embed: 16, embed_dim: 8,
};
const LOSS = { disc_conditional: false, disc_in_channels: 3, disc_start: 0, disc_weight: 0.4, quant_loss_weight: 1.0,
  entropy_loss_weight: 0.05, gen_loss_weight: 0.1, lecam_loss_weight: 0.05, perceptual_weight: 0.0 };

describe('LPIPS weights in tokenizer checkpoints', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-lpips-prov-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const batch = tensor(Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.sin(i)), [2, 3, 32, 32]);

  it('perceptual_weight 0: no loss.perceptual_loss.* stored, meta.lpips_weights null; the checkpoint resumes', async () => {
    const trainer = TokenizerTrainer.create(Tokenizer.create(TOK as never, { seed: 1 }), LOSS, { seed: 1 });
    expect(trainer.parameterNames().some((k) => k.startsWith('loss.perceptual_loss.'))).toBe(true);
    await trainer.step(batch, { globalStep: 0 });
    const ck = await trainer.toCheckpoint({ epoch: 0, globalStep: 1 });
    expect([...ck.stateDict.keys()].filter((k) => k.startsWith('loss.perceptual_loss.'))).toEqual([]);
    expect([...ck.stateDict.keys()].some((k) => k.startsWith('loss.discriminator.'))).toBe(true);
    expect(ck.meta.lpips_weights).toBeNull();
    await saveCheckpoint(join(dir, 'p0.ckpt'), ck);
    const again = TokenizerTrainer.create(Tokenizer.create(TOK as never, { seed: 2 }), LOSS, { seed: 2 });
    expect(await again.restore(await loadCheckpoint(join(dir, 'p0.ckpt')))).toEqual({ epoch: 0, globalStep: 1 });
    const a = trainer.tokenizer.stateDict().get('encoder.conv_in.weight')!.dataSync();
    expect(Array.from(again.tokenizer.stateDict().get('encoder.conv_in.weight')!.dataSync())).toEqual(Array.from(a));
    await expect(again.loadPerceptual(join(dir, 'p0.ckpt'))).rejects.toThrow(/holds no loss\.perceptual_loss\.\* weights/);
  }, 120_000);

  it('untrained LPIPS weights are refused as LPIPS weights (recorded null, or an ibq-native checkpoint without a record)', async () => {
    const trainer = TokenizerTrainer.create(Tokenizer.create(TOK as never, { seed: 1 }), LOSS, { seed: 1 });
    const random = new Map([...trainer.stateDict()].filter(([k]) => k.startsWith('loss.perceptual_loss.')));
    const ck = await trainer.toCheckpoint({ epoch: 0, globalStep: 0 });
    const withRandom = new Map([...ck.stateDict, ...random]);
    const older = { ...ck.meta };
    delete older.lpips_weights;
    for (const [name, meta, why] of [
      ['null.ckpt', ck.meta, /records that it holds no trained LPIPS weights/],
      ['older.ckpt', older, /without recording where its LPIPS weights came from/],
    ] as const) {
      await saveCheckpoint(join(dir, name), { stateDict: withRandom, meta });
      const t = TokenizerTrainer.create(Tokenizer.create(TOK as never, { seed: 1 }), { ...LOSS, perceptual_weight: 1.0 }, { seed: 1 });
      await expect(t.loadPerceptual(join(dir, name))).rejects.toThrow(why);
      expect(t.perceptualLoaded).toBe(false);
      // resuming keeps them out of the loss: still no LPIPS weights
      await t.restore(await loadCheckpoint(join(dir, name)));
      expect(t.perceptualLoaded).toBe(false);
      await expect(t.step(batch, { globalStep: 0 })).rejects.toThrow(/LPIPS weights are needed/);
    }
    expect(lpipsProvenance({ epoch: 3, global_step: 10, hyper_parameters: {} })).toEqual({ trained: true, source: 'official checkpoint' });
    expect(lpipsProvenance({ lpips_weights: { source: 'torchvision vgg16-397923af.pth + LPIPS vgg.pth' } }).source).toMatch(/vgg\.pth/);
  }, 120_000);

  it('ckpt convert to .safetensors keeps the tokenizer config: a 32 px tokenizer loads back as 32 px', async () => {
    const tok = Tokenizer.create(TOK as never, { seed: 1 });
    const src = join(dir, 'tok32.ckpt');
    await saveCheckpoint(src, {
      stateDict: tok.stateDict(),
      meta: { hyper_parameters: { config: { model: { class_path: 'src.IBQ.models.ibqgan.IBQ', init_args: TOK } } } },
    });
    expect((await Tokenizer.fromCheckpoint(src)).config.ddconfig.resolution).toBe(32);
    const st = join(dir, 'tok32.safetensors');
    const r = await run(process.execPath, [BIN, 'ckpt', 'convert', src, st]);
    expect(r.status, r.stderr).toBe(0);
    const back = await Tokenizer.fromCheckpoint(st);
    expect(back.config.ddconfig.resolution).toBe(32);
    expect(back.config.n_embed).toBe(16);
  }, 120_000);
});

import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';

import {
  Tokenizer, inferTokenizerConfig, loadCheckpoint, loadSafetensors, tokenizerPreset, readConfig, tensor,
  TOKENIZER_PRESETS, type Checkpoint, type Tensor, type TokenizerConfig,
} from '../../dist/index.js';
import { ints, maxAbsDiff } from '../support/compare.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';

const TOL = 1e-5;

/** The case's config: the official init_args fields of the tokenizer (case.json). */
function caseConfig(): TokenizerConfig {
  const c = JSON.parse(readFileSync(fixture('tokenizer', 'case.json'), 'utf8'));
  return {
    ddconfig: c.ddconfig, n_embed: c.n_embed, embed_dim: c.embed_dim, beta: c.beta, use_entropy_loss: c.use_entropy_loss,
    entropy_temperature: c.entropy_temperature, sample_minimization_weight: c.sample_minimization_weight,
    batch_maximization_weight: c.batch_maximization_weight,
  };
}

describe.skipIf(!HAVE_FIXTURES)('Tokenizer on the tokenizer fixture (official IBQ VQModel)', () => {
  let g: Map<string, Tensor>;
  let ckpt: Checkpoint;
  let tok: Tokenizer;
  beforeAll(async () => {
    g = await loadSafetensors(fixture('tokenizer', 'golden.safetensors'));
    ckpt = await loadCheckpoint(fixture('tokenizer', 'model.ckpt'));
    tok = (await Tokenizer.fromCheckpoint(fixture('tokenizer', 'model.ckpt'), { config: caseConfig() })).eval();
  });

  it('loads the checkpoint 1:1, listing loss.* and model_ema.* keys as skipped', () => {
    const r = tok.loadReport!;
    expect(r.missing).toEqual([]);
    expect(r.unexpected).toEqual([]);
    expect(r.mismatched).toEqual([]);
    const foreign = [...ckpt.stateDict.keys()].filter((k) => k.startsWith('loss.') || k.startsWith('model_ema.'));
    expect(foreign.some((k) => k.startsWith('loss.perceptual_loss.'))).toBe(true);
    expect(r.skipped.sort()).toEqual(foreign.sort());
    const own = [...ckpt.stateDict.keys()].filter((k) => !foreign.includes(k));
    expect([...tok.stateDict().keys()].sort()).toEqual(own.sort());
  });

  it('eval forward reproduces eval_h, eval_indices and eval_xrec', async () => {
    const o = await tok.forward(g.get('x')!);
    expect(o.h.shape).toEqual([2, 16, 16, 16]);
    expect(o.indices.shape).toEqual([2, 16, 16]);
    expect(maxAbsDiff(o.h, g.get('eval_h')!)).toBeLessThanOrEqual(TOL);
    expect(ints(o.indices)).toEqual(ints(g.get('eval_indices')!));
    expect(maxAbsDiff(o.xrec, g.get('eval_xrec')!)).toBeLessThanOrEqual(TOL);
    for (const k of ['quant_loss', 'sample_entropy', 'avg_entropy', 'entropy_loss'] as const) {
      expect(Number.isFinite(Number(o[k].dataSync()[0])), k).toBe(true);
    }
  });

  it('encode/decode agree with forward', async () => {
    const o = await tok.forward(g.get('x')!);
    const e = await tok.encode(g.get('x')!);
    expect(e.indices.dtype).toBe('int64');
    expect(ints(e.indices)).toEqual(ints(g.get('eval_indices')!));
    expect(maxAbsDiff(e.z_q, o.z_q)).toBeLessThanOrEqual(TOL);
    const xrec = await tok.decode(e.indices);
    expect(xrec.shape).toEqual([2, 3, 32, 32]);
    expect(maxAbsDiff(xrec, g.get('eval_xrec')!)).toBeLessThanOrEqual(TOL);
  });

  it('train-mode forward reproduces train_h, train_z_q, train_indices and train_xrec', async () => {
    const t = await Tokenizer.fromCheckpoint(ckpt, { config: caseConfig() });
    t.train();
    expect(t.training).toBe(true);
    const o = await t.forward(g.get('x')!);
    expect(maxAbsDiff(o.h, g.get('train_h')!)).toBeLessThanOrEqual(TOL);
    expect(maxAbsDiff(o.z_q, g.get('train_z_q')!)).toBeLessThanOrEqual(TOL);
    expect(ints(o.indices)).toEqual(ints(g.get('train_indices')!));
    expect(maxAbsDiff(o.xrec, g.get('train_xrec')!)).toBeLessThanOrEqual(TOL);
    t.dispose();
  });

  it('with ema: true reproduces ema_indices and ema_xrec', async () => {
    const t = (await Tokenizer.fromCheckpoint(ckpt, { config: caseConfig(), ema: true })).eval();
    expect(t.loadReport!.skipped.filter((k) => k.startsWith('model_ema.')).length).toBeGreaterThan(100);
    const o = await t.forward(g.get('x')!);
    expect(ints(o.indices)).toEqual(ints(g.get('ema_indices')!));
    expect(maxAbsDiff(o.xrec, g.get('ema_xrec')!)).toBeLessThanOrEqual(TOL);
    // the EMA weights really differ from the raw ones
    expect(maxAbsDiff(o.xrec, g.get('eval_xrec')!)).toBeGreaterThan(1e-3);
    t.dispose();
  });

  it('without a config infers the fixture architecture and gives the same outputs', async () => {
    const t = (await Tokenizer.fromCheckpoint(fixture('tokenizer', 'model.ckpt'))).eval();
    const c = caseConfig();
    expect(t.config.ddconfig).toEqual(c.ddconfig);
    expect([t.config.n_embed, t.config.embed_dim]).toEqual([c.n_embed, c.embed_dim]);
    expect(t.config.use_entropy_loss).toBe(true);
    const o = await t.forward(g.get('x')!);
    expect(ints(o.indices)).toEqual(ints(g.get('eval_indices')!));
    expect(maxAbsDiff(o.xrec, g.get('eval_xrec')!)).toBeLessThanOrEqual(TOL);
    t.dispose();
  });

  it('rejects a checkpoint of another size, naming the keys and shapes', async () => {
    const other = { ...caseConfig(), n_embed: 256 };
    await expect(Tokenizer.fromCheckpoint(ckpt, { config: other })).rejects.toThrow(
      /quantize\.embedding\.weight expected \[256, 16\] got \[128, 16\]/,
    );
  });

  it('rejects bad images and indices with clear messages', async () => {
    const img = (shape: number[], fill = 0) => tensor(new Float32Array(shape.reduce((a, b) => a * b)).fill(fill), shape);
    await expect(tok.forward(img([1, 3, 33, 32]))).rejects.toThrow(/height 33 is not divisible by 2.*nearest valid height: 34/);
    await expect(tok.encode(img([1, 3, 32, 31]))).rejects.toThrow(/width 31 is not divisible by 2/);
    await expect(tok.forward(img([1, 4, 32, 32]))).rejects.toThrow(/\[B, 3, H, W\].*in_channels 3.*\[1, 4, 32, 32\]/);
    await expect(tok.forward(img([1, 3, 32, 32], NaN))).rejects.toThrow(/NaN or infinite/);
    await expect(tok.forward(img([1, 3, 32, 32], Infinity))).rejects.toThrow(RangeError);
    await expect(tok.decode(tensor([0n, 128n], [1, 1, 2]))).rejects.toThrow(/\[0, 127\].*n_embed 128.*128/);
    await expect(tok.decode(tensor([-3n, 5n], [1, 1, 2]))).rejects.toThrow(/from -3 to 5/);
    await expect(tok.decode(tensor([1n, 2n], [2]))).rejects.toThrow(/\[B, h, w\]/);
    await expect(tok.forward(undefined as never)).rejects.toThrow(TypeError);
  });
});

describe('Tokenizer configs', () => {
  it('GroupNorm channel counts must be divisible by 32', () => {
    const dd = { z_channels: 32, resolution: 32, ch: 40, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [] };
    expect(() => Tokenizer.create({ ddconfig: dd, n_embed: 16, embed_dim: 8 })).toThrow(/ddconfig\.ch: GroupNorm\(32\).*40/);
    expect(() => Tokenizer.create({ ddconfig: { ...dd, ch: 32, ch_mult: [1, 1.5] as never }, n_embed: 16, embed_dim: 8 })).toThrow(/ch_mult\[1\]/);
    expect(() => Tokenizer.create({ ddconfig: dd, n_embed: 16 } as never)).toThrow(/config\.embed_dim/);
    expect(() => Tokenizer.create('IBQ-999' as never)).toThrow(/config/);
  });

  it('the shipped YAML files read back as the presets', () => {
    for (const name of TOKENIZER_PRESETS) {
      const c = readConfig(new URL(`../../configs/${name}.yaml`, import.meta.url).pathname);
      expect(c.classPath).toBe('src.IBQ.models.ibqgan.IBQ');
      expect(c.tokenizer, name).toEqual(tokenizerPreset(name));
    }
    expect(tokenizerPreset('IBQ-16384').ddconfig).toEqual({
      double_z: false, z_channels: 256, resolution: 256, in_channels: 3, out_ch: 3, ch: 128, ch_mult: [1, 1, 2, 2, 4],
      num_res_blocks: 4, attn_resolutions: [16], dropout: 0,
    });
  });

  it('infers exactly the IBQ-16384 preset from a checkpoint of its shapes (random weights)', async () => {
    const tok = Tokenizer.create('IBQ-16384', { seed: 1 });
    const sd = tok.stateDict();
    tok.dispose();
    expect(sd.get('quantize.embedding.weight')!.shape).toEqual([16384, 256]);
    expect(inferTokenizerConfig(new Map([...sd].map(([k, t]) => [k, t.shape])))).toEqual(tokenizerPreset('IBQ-16384'));
    // a checkpoint with extra training-only keys loads through fromCheckpoint with no config
    sd.set('loss.discriminator.main.0.weight', tensor(new Float32Array(4), [4]));
    const loaded = await Tokenizer.fromCheckpoint({ stateDict: sd, meta: {} });
    expect(loaded.config).toEqual(tokenizerPreset('IBQ-16384'));
    expect(loaded.loadReport!.skipped).toEqual(['loss.discriminator.main.0.weight']);
    loaded.dispose();
  });
});

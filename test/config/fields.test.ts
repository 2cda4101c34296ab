// Each config is declared once (C++ for_each_field, native/ibq/core/config_field.h): the TypeScript view
// (lib/*/config_fields.ts and lib/tokenizer/training_fields.ts, generated) has the same fields and defaults as the C++ one (configFields()), the
// defaults are the official ones (or a listed, reasoned exception), and the validation contract holds: TypeScript
// gives the user-facing TypeError/RangeError, the bindings only convert, the core asserts (internal errors).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  DDCONFIG_FIELDS, IBQ_QUANTIZER_FIELDS, IBQuantizer, LOSS_CONFIG_FIELDS, resolveLossConfig, resolveTokenizerConfig,
  tensor, Tokenizer, TOKENIZER_TRAINER_FIELDS, TokenizerTrainer, Transformer, VQ_QUANTIZER_FIELDS, VectorQuantizer,
} from '../../dist/index.js';
import { native } from '../../dist/native.js';
import { trainerOptionsFromConfig } from '../../dist/tokenizer/trainer.js';
import { TRANSFORMER_FIELDS } from '../../dist/transformer/config_fields.js';
// @ts-expect-error: a plain ES module without types
import { FILES, renderConfigFields } from '../../scripts/gen-config-fields.mjs';

const ROOT = join(__dirname, '..', '..');
const TS_VIEWS: Record<string, Record<string, object>> = {
  ddconfig: DDCONFIG_FIELDS, ibq_quantizer: IBQ_QUANTIZER_FIELDS, vq_quantizer: VQ_QUANTIZER_FIELDS,
  lossconfig: LOSS_CONFIG_FIELDS, tokenizer_trainer: TOKENIZER_TRAINER_FIELDS, transformer: TRANSFORMER_FIELDS,
};

describe('one declaration per config', () => {
  const cpp = native.configFields();

  it('the TypeScript view of each config has the C++ fields, in order, with the same defaults and ranges', () => {
    expect(Object.keys(cpp).sort()).toEqual(Object.keys(TS_VIEWS).sort());
    for (const [name, ts] of Object.entries(TS_VIEWS)) {
      const c = cpp[name]!;
      expect(Object.keys(ts), name).toEqual(Object.keys(c));
      for (const [field, spec] of Object.entries(c)) {
        const t = (ts as Record<string, Record<string, unknown>>)[field]!;
        expect(t.default, `${name}.${field} default`).toEqual(spec.default);
        expect(t.required ?? false, `${name}.${field} required`).toBe(spec.required ?? false);
        expect(t, `${name}.${field}`).toEqual(spec);
      }
    }
  });

  it('the generated files are what scripts/gen-config-fields.mjs writes from the declarations', () => {
    expect(FILES.map((f: { out: string }) => f.out).sort()).toEqual(['lib/tokenizer/config_fields.ts', 'lib/tokenizer/training_fields.ts', 'lib/transformer/config_fields.ts']);
    for (const file of FILES) {
      const text = readFileSync(join(ROOT, file.out), 'utf8');
      expect(text, `${file.out} is stale: rebuild, then npm run gen:config-fields`).toBe(renderConfigFields(file, cpp));
    }
    // the check can fail: a changed default gives another text
    const changed = structuredClone(cpp);
    changed.ddconfig!.dropout = { ...changed.ddconfig!.dropout!, default: 0.5 };
    expect(renderConfigFields(FILES[0], changed)).not.toBe(readFileSync(join(ROOT, FILES[0].out), 'utf8'));
  });

  // The official signatures (TencentARC/SEED-Voken, src/IBQ): models/ibqgan.py (VQModel, IBQ), modules/vqvae/quantize.py
  // (IndexPropagationQuantize, VectorQuantizer2), modules/losses/vqperceptual.py (VQLPIPSWithDiscriminator),
  // modules/diffusionmodules/model.py (Encoder, Decoder), modules/ema.py (LitEma), modules/transformer/llama.py (GPT).
  const OFFICIAL: Record<string, Record<string, unknown>> = {
    ddconfig: { ch_mult: [1, 2, 4, 8], dropout: 0 },
    ibq_quantizer: { beta: 0.25, use_entropy_loss: false, entropy_temperature: 0.01, sample_minimization_weight: 1, batch_maximization_weight: 1 },
    vq_quantizer: { beta: 0.25, legacy: true, l2_normalize: false },
    lossconfig: {
      codebook_weight: 1, pixelloss_weight: 1, disc_num_layers: 3, disc_in_channels: 3, disc_factor: 1, disc_weight: 1,
      perceptual_weight: 1, use_actnorm: false, disc_conditional: false, disc_ndf: 64, disc_loss: 'hinge', gen_loss_weight: null,
      lecam_loss_weight: null, quant_loss_weight: 1, entropy_loss_weight: 1,
    },
    tokenizer_trainer: { scheduler_type: 'None', min_learning_rate: 0, lr_drop_epoch: [], lr_drop_rate: 0.1, gradient_clip_val: 0, use_ema: false, ema_decay: 0.999 },
    transformer: {
      n_layer: 12, n_head: 8, n_embd: 256, class_num: 1000, cls_token_num: 1, rope_base: 10000, norm_eps: 1e-5, multiple_of: 256,
      n_kv_head: null, ffn_dim_multiplier: null, shared_aln: false, resid_dropout_p: 0, ffn_dropout_p: 0.1, attn_dropout_p: 0,
      token_drop: 0.1, drop_path_rate: 0, alng: 1e-3, initalizer_range: 0.02,
    },
  };
  // Official arguments without a default: required here too, except these (every official config gives the value).
  const REQUIRED_OFFICIALLY_DEFAULTED_HERE: Record<string, Record<string, unknown>> = {
    ddconfig: { in_channels: 3, out_ch: 3, attn_resolutions: [] },
    lossconfig: { disc_start: 0 },
    // official learning_rate None cannot run; ours the official configs' value
    tokenizer_trainer: { learning_rate: 1e-4 },
  };
  // Official defaults not taken, and why (see the C++ declarations).
  const DIFFERENT: Record<string, Record<string, unknown>> = {
    ddconfig: { double_z: false }, // official Encoder: true, which the official IBQ model cannot run (quant_conv takes z_channels)
    transformer: { cond_dim: null }, // official 256; null = n_embd, the only value that works
  };

  it('the defaults are the official ones, apart from the listed exceptions', () => {
    for (const [name, fields] of Object.entries(cpp)) {
      for (const [field, spec] of Object.entries(fields)) {
        const where = `${name}.${field}`;
        if (field in (OFFICIAL[name] ?? {})) {
          expect(spec.default, where).toEqual(OFFICIAL[name]![field]);
        } else if (field in (REQUIRED_OFFICIALLY_DEFAULTED_HERE[name] ?? {})) {
          expect(spec.default, where).toEqual(REQUIRED_OFFICIALLY_DEFAULTED_HERE[name]![field]);
        } else if (field in (DIFFERENT[name] ?? {})) {
          expect(spec.default, where).toEqual(DIFFERENT[name]![field]);
        } else {
          // required officially and here, or not an official field (quantizer_chunk, warmup_steps, max_steps,
          // class_dropout_prob)
          expect(spec.required || ['quantizer_chunk', 'warmup_steps', 'max_steps', 'class_dropout_prob'].includes(field), where).toBe(true);
        }
      }
    }
    expect(cpp.ibq_quantizer!.n_embed!.required).toBe(true);
    expect(cpp.ddconfig!.ch!.required).toBe(true);
  });
});

describe('the defaults reach the models', () => {
  const TOK = {
    ddconfig: { z_channels: 32, resolution: 16, ch: 32, ch_mult: [1, 2], num_res_blocks: 1 }, n_embed: 16, embed_dim: 8,
  };

  it('IBQuantizer and the tokenizer config: use_entropy_loss false unless given', async () => {
    const q = new IBQuantizer({ n_embed: 16, embed_dim: 8 }, { seed: 1 });
    expect(q.options.use_entropy_loss).toBe(false);
    const z = tensor(Float32Array.from({ length: 2 * 8 * 2 * 2 }, (_, i) => Math.sin(i)), [2, 8, 2, 2]);
    expect((await q.forward(z)).entropy_loss.dataSync()[0]).toBe(0);
    const e = new IBQuantizer({ n_embed: 16, embed_dim: 8, use_entropy_loss: true }, { seed: 1 });
    expect((await e.forward(z)).entropy_loss.dataSync()[0]).not.toBe(0);
    expect(resolveTokenizerConfig(TOK).use_entropy_loss).toBe(false);
    expect(resolveTokenizerConfig(TOK).ddconfig.attn_resolutions).toEqual([]);
    q.dispose();
    e.dispose();
  });

  it('TokenizerTrainer: no EMA unless useEma (official use_ema false); trainTokenizer reads use_ema from the config', () => {
    const tok = Tokenizer.create(TOK, { seed: 1 });
    const loss = { perceptual_weight: 0, disc_num_layers: 1, disc_ndf: 8 };
    const plain = TokenizerTrainer.create(tok, loss, { seed: 1 });
    expect(plain.parameterNames().some((k) => k.startsWith('model_ema.'))).toBe(false);
    plain.dispose();
    const ema = TokenizerTrainer.create(tok, loss, { seed: 1, useEma: true });
    expect([...ema.stateDict().keys()].some((k) => k.startsWith('model_ema.'))).toBe(true);
    ema.dispose();
    tok.dispose();
    expect(trainerOptionsFromConfig({ use_ema: true, learning_rate: 2e-4, lr_drop_epoch: null })).toEqual({ useEma: true, learningRate: 2e-4 });
    expect(trainerOptionsFromConfig({})).toEqual({});
    expect(() => trainerOptionsFromConfig({ use_ema: 'yes' })).toThrow(/^config\.use_ema: expected a boolean/);
  });

  it('every transformer field travels to the native model and back', () => {
    const cfg = {
      vocab_size: 40, block_size: 16, n_layer: 2, n_head: 4, n_embd: 32, cond_dim: 32, class_num: 5, cls_token_num: 2,
      rope_base: 500, norm_eps: 1e-6, multiple_of: 32, n_kv_head: 2, ffn_dim_multiplier: 1.5, shared_aln: true,
      resid_dropout_p: 0.2, ffn_dropout_p: 0.3, attn_dropout_p: 0.25, token_drop: 0.05, drop_path_rate: 0.15,
      class_dropout_prob: 0.2, alng: 0.01, initalizer_range: 0.03,
    };
    expect(Object.keys(cfg).sort()).toEqual(Object.keys(TRANSFORMER_FIELDS).sort());
    const tr = Transformer.create(cfg, { seed: 1 });
    expect(tr.config).toEqual(cfg);
    tr.dispose();
    const dflt = Transformer.create({ vocab_size: 16, block_size: 4, n_embd: 16, n_head: 2, multiple_of: 16, class_num: 3 }, { seed: 1 });
    expect(dflt.config.n_layer).toBe(12); // official default
    expect(dflt.config.cond_dim).toBe(16); // n_embd
    dflt.dispose();
  });
});

describe('one validation contract', () => {
  const base = { ddconfig: { z_channels: 32, resolution: 16, ch: 32, ch_mult: [1, 2], num_res_blocks: 1 }, n_embed: 16, embed_dim: 8 };

  it('TypeScript: TypeError for the wrong kind, RangeError for a value out of range or an unknown key, naming it', () => {
    expect(() => Tokenizer.create({ ...base, ddconfig: { ...base.ddconfig, ch: 40 } })).toThrow(RangeError);
    expect(() => Tokenizer.create({ ...base, ddconfig: { ...base.ddconfig, ch: '32' as never } })).toThrow(/^config\.ddconfig\.ch: expected an integer >= 1, got the string "32"$/);
    expect(() => Tokenizer.create({ ...base, ddconfig: { ...base.ddconfig, attn_resolution: [8] } as never })).toThrow(/^config\.ddconfig\.attn_resolution: not a field of ddconfig/);
    expect(() => Tokenizer.create({ ...base, ddconfig: { ...base.ddconfig, dropout: 1 } })).toThrow(/^config\.ddconfig\.dropout: expected a finite number in \[0, 1\), got 1$/);
    expect(() => Tokenizer.create({ ...base, ddconfig: { ...base.ddconfig, ch_mult: [] } })).toThrow(/^config\.ddconfig\.ch_mult: expected 1 to 12 integers, got 0$/);
    expect(() => new IBQuantizer({ n_embed: 4, embed_dim: 2, entropy_temperature: 0 })).toThrow(/^options\.entropy_temperature: expected a finite number > 0, got 0$/);
    expect(() => new IBQuantizer({ n_embed: 4, embed_dim: 2, bogus: 1 } as never)).toThrow(/^options\.bogus: not a field of the IBQuantizer options/);
    expect(() => new VectorQuantizer({ n_embed: 4 } as never)).toThrow(TypeError);
    expect(() => new VectorQuantizer({ n_embed: 4 } as never)).toThrow(/^options\.embed_dim: required, expected an integer >= 1$/);
    expect(() => resolveLossConfig({ disc_loss: 'wgan' })).toThrow(/^lossconfig\.disc_loss: expected one of 'hinge', 'vanilla', got "wgan"$/);
    expect(() => resolveLossConfig({ use_actnorm: true })).toThrow(/^lossconfig\.use_actnorm: only false is supported/);
    expect(() => resolveLossConfig({ disc_strat: 0 })).toThrow(RangeError);
    expect(resolveLossConfig({ gen_loss_weight: null }).gen_loss_weight).toBeNull();
    const tok = Tokenizer.create(base, { seed: 0 });
    expect(() => TokenizerTrainer.create(tok, {}, { use_ema: true } as never)).toThrow(/^opts\.use_ema: unknown option \(did you mean useEma\?\)/);
    expect(() => TokenizerTrainer.create(tok, {}, { schedulerType: 'linear-warmup_cosine-decay', warmupSteps: 5, totalSteps: 5 }))
      .toThrow(/^opts\.totalSteps: linear-warmup_cosine-decay: the total training steps \(5\) must exceed the warm-up steps \(5\)$/);
    expect(() => TokenizerTrainer.create(tok, {}, { learningRate: 0 })).toThrow(/^opts\.learningRate: expected a finite number > 0, got 0$/);
    tok.dispose();
  });

  it('bindings only convert and the core asserts: a value TypeScript would refuse is an internal error, not a RangeError', async () => {
    const expectInternal = (f: () => unknown, what: RegExp) => {
      let err: (Error & { code?: string }) | undefined;
      try {
        f();
      } catch (e) {
        err = e as Error & { code?: string };
      }
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(RangeError);
      expect(err!.code).toBe('ERR_IBQ_NATIVE');
      expect(err!.message).toMatch(what);
    };
    expectInternal(() => new native.TokenizerHandle({ ...base, ddconfig: { ...base.ddconfig, ch: 40 } }), /^internal error: ddconfig: GroupNorm/);
    expectInternal(() => new native.IBQuantizerHandle({ n_embed: 0, embed_dim: 2 }), /^internal error: ibq_quantizer\.n_embed = 0/);
    expectInternal(() => native.transformerConfig({ vocab_size: 16, block_size: 15 }), /^internal error: transformer: block_size 15/);
    const tr = new native.TransformerHandle({ vocab_size: 16, block_size: 4, n_layer: 1, n_head: 2, n_embd: 16, class_num: 3, multiple_of: 16 }, 0);
    const labels = tensor([0], [1], { dtype: 'int64' });
    const err = await tr.sample(labels.handle, { cfgScale: 1, temperature: -1, topK: 0, topP: 1, greedy: false }).catch((e: Error) => e);
    expect(err).not.toBeInstanceOf(RangeError);
    expect((err as Error).message).toMatch(/^internal error: sample options out of range/);
    tr.dispose();
    const pg = new native.ProcessGroupHandle();
    const perr = await pg.init({ masterAddr: '127.0.0.1', masterPort: 70000, worldSize: 2, rank: 0, timeoutSeconds: 1 }).catch((e: Error) => e);
    expect((perr as Error & { code?: string }).code).toBe('ERR_IBQ_NATIVE');
    expect((perr as Error).message).toMatch(/^internal error: process group options out of range/);
  });
});

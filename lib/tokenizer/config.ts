/**
 * TokenizerConfig: the official `model.init_args` of an IBQ tokenizer YAML (configs/IBQ/gpu/imagenet_ibqgan_*.yaml
 * of the official repo), resolved against the one declaration of its parts (lib/tokenizer/config_fields.ts,
 * generated from the C++ for_each_field lists); presets for the four released sizes; and inference of the
 * architecture from a state dict's shapes (so an official checkpoint loads with no YAML).
 */
import { readConfig } from '../config/read_config.js';
import { fieldValue, resolveFields } from '../config/fields.js';
import { describe } from '../core/errors.js';
import { DDCONFIG_FIELDS, IBQ_QUANTIZER_FIELDS, VQ_QUANTIZER_FIELDS, type ResolvedDDConfig } from './config_fields.js';

export type { DDConfig, ResolvedDDConfig } from './config_fields.js';
export type { QuantizerChunk, ResolvedTokenizerConfig, TokenizerConfig, TokenizerLossconfig } from './config_types.js';
import type { ResolvedTokenizerConfig } from './config_types.js';

/** A ddconfig checked field by field against its declaration (unknown keys are errors), defaults filled in. */
function ddconfigFields(v: unknown, arg: string): ResolvedDDConfig {
  return resolveFields<ResolvedDDConfig>(DDCONFIG_FIELDS, v, arg, { what: 'ddconfig (the VQGAN Encoder / Decoder arguments)', unknown: 'error' });
}

/** The rule between ddconfig fields: GroupNorm(32) divides ch and every ch * ch_mult[i]. */
function checkGroupNorm(dd: ResolvedDDConfig, arg: string): void {
  const groups = (channels: number, what: string) => {
    if (channels % 32 !== 0) throw new RangeError(`${what}: GroupNorm(32) needs a channel count divisible by 32, got ${channels}`);
  };
  groups(dd.ch, `${arg}.ch`);
  dd.ch_mult.forEach((m, i) => groups(dd.ch * m, `${arg}.ch * ch_mult[${i}] = ${dd.ch} * ${m}`));
}

export const TOKENIZER_PRESETS = ['IBQ-1024', 'IBQ-8192', 'IBQ-16384', 'IBQ-262144'] as const;
export type TokenizerPreset = (typeof TOKENIZER_PRESETS)[number];

/** The official training-loss settings shared by the four released tokenizers. */
const OFFICIAL_LOSSCONFIG = {
  target: 'src.IBQ.modules.losses.vqperceptual.VQLPIPSWithDiscriminator',
  params: {
    disc_conditional: false,
    disc_in_channels: 3,
    disc_start: 0,
    disc_weight: 0.4,
    quant_loss_weight: 1.0,
    entropy_loss_weight: 0.05,
    gen_loss_weight: 0.1,
    lecam_loss_weight: 0.05,
  },
};

/** Everything of the official init_args except n_embed and lr_drop_epoch (the same in all four YAMLs). */
function official(n_embed: number, lr_drop_epoch: number[]): ResolvedTokenizerConfig {
  return {
    ddconfig: {
      double_z: false,
      z_channels: 256,
      resolution: 256,
      in_channels: 3,
      out_ch: 3,
      ch: 128,
      ch_mult: [1, 1, 2, 2, 4],
      num_res_blocks: 4,
      attn_resolutions: [16],
      dropout: 0.0,
    },
    lossconfig: structuredClone(OFFICIAL_LOSSCONFIG),
    n_embed,
    embed_dim: 256,
    learning_rate: 1e-4,
    l2_normalize: false,
    use_entropy_loss: true,
    sample_minimization_weight: 1.0,
    batch_maximization_weight: 1.0,
    entropy_temperature: 0.01,
    beta: 0.25,
    use_ema: true,
    resume_lr: null,
    lr_drop_epoch,
  };
}

/** The official configs of TencentARC/IBQ-Tokenizer-{1024,8192,16384,262144} (256 px, 16x16 tokens). */
export function tokenizerPreset(name: TokenizerPreset): ResolvedTokenizerConfig {
  switch (name) {
    case 'IBQ-1024':
      return official(1024, [250, 300]);
    case 'IBQ-8192':
      return official(8192, [250]);
    case 'IBQ-16384':
      return official(16384, [250, 300]);
    case 'IBQ-262144':
      return official(262144, [250, 300]);
  }
  throw new RangeError(`name: unknown tokenizer preset ${JSON.stringify(name)} (expected one of ${TOKENIZER_PRESETS.join(', ')})`);
}

export function isPresetName(v: unknown): v is TokenizerPreset {
  return typeof v === 'string' && (TOKENIZER_PRESETS as readonly string[]).includes(v);
}

/**
 * Validates a config (official field names) and fills the defaults: ddconfig and the quantizer fields against
 * their declarations, l2_normalize; other init_args are kept as given. Errors name the field:
 * `config.ddconfig.ch_mult[1]: ...`.
 */
export function resolveTokenizerConfig(cfg: unknown, arg = 'config'): ResolvedTokenizerConfig {
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) {
    throw new TypeError(`${arg}: expected the tokenizer config (the official model.init_args), got ${describe(cfg)}`);
  }
  const c = cfg as Record<string, unknown>;
  // every field first, then the rules between fields
  const ddconfig = ddconfigFields(c.ddconfig, `${arg}.ddconfig`);
  const q = resolveFields<ResolvedTokenizerConfig>(IBQ_QUANTIZER_FIELDS, c, arg, { what: 'the tokenizer config', unknown: 'keep' });
  const lc = c.lossconfig;
  if (lc !== undefined && (lc === null || typeof lc !== 'object' || Array.isArray(lc))) {
    throw new TypeError(`${arg}.lossconfig: expected { target, params }, got ${describe(lc)}`);
  }
  q.ddconfig = ddconfig;
  q.l2_normalize = fieldValue(VQ_QUANTIZER_FIELDS.l2_normalize, c.l2_normalize, `${arg}.l2_normalize`) as boolean;
  checkGroupNorm(ddconfig, `${arg}.ddconfig`);
  return q;
}

/**
 * The tokenizer config of an official-layout YAML (model.init_args, or first_stage_config.params of an AR YAML),
 * resolved; errors name the file and the field.
 */
export function tokenizerConfigFromYaml(path: string, arg = 'config'): ResolvedTokenizerConfig {
  const c = readConfig(path);
  if (!c.tokenizer) throw new RangeError(`${arg}: ${path} holds no tokenizer config (model.init_args.ddconfig)`);
  return resolveTokenizerConfig(c.tokenizer, `${path}: ${c.tokenizerSection}`);
}

/** The parts that define the architecture and the weights' shapes. */
export function architecture(cfg: ResolvedTokenizerConfig): Record<string, unknown> {
  const { resolution: _r, attn_resolutions: _a, dropout: _d, ...dd } = cfg.ddconfig;
  const levels = cfg.ddconfig.ch_mult.length;
  const attnLevels = [...Array(levels).keys()].filter((i) =>
    cfg.ddconfig.attn_resolutions.includes(Math.floor(cfg.ddconfig.resolution / 2 ** i)),
  );
  return { ...dd, attnLevels, n_embed: cfg.n_embed, embed_dim: cfg.embed_dim };
}

/**
 * The architecture of a tokenizer state dict (official key names), from the weights' shapes alone: ch,
 * ch_mult, num_res_blocks, the levels with attention, z_channels, double_z, in/out channels, embed_dim,
 * n_embed. `resolution` is chosen so that the lowest level is 16 (the official convention), which makes the
 * attention levels an equivalent (resolution, attn_resolutions) pair. When the result has the shapes of a
 * preset, the preset itself is returned; otherwise the official IBQ quantizer/loss settings complete it.
 * @throws RangeError naming the missing key when the state dict is not a tokenizer's
 */
export function inferTokenizerConfig(shapes: Map<string, number[]>): ResolvedTokenizerConfig {
  const need = (k: string): number[] => {
    const s = shapes.get(k);
    if (!s) throw new RangeError(`stateDict: cannot infer the tokenizer architecture: key '${k}' is missing`);
    return s;
  };
  const count = (prefix: string, suffix: string) => {
    let n = 0;
    while (shapes.has(`${prefix}${n}${suffix}`)) n++;
    return n;
  };
  const convIn = need('encoder.conv_in.weight');
  const ch = convIn[0]!;
  const levels = count('encoder.down.', '.block.0.conv1.weight');
  if (levels === 0) need('encoder.down.0.block.0.conv1.weight');
  const ch_mult = [...Array(levels).keys()].map((i) => need(`encoder.down.${i}.block.0.conv1.weight`)[0]! / ch);
  const num_res_blocks = count('encoder.down.0.block.', '.conv1.weight');
  const z_channels = need('decoder.conv_in.weight')[1]!;
  const resolution = 16 * 2 ** (levels - 1);
  const attn_resolutions = [...Array(levels).keys()]
    .filter((i) => shapes.has(`encoder.down.${i}.attn.0.q.weight`))
    .map((i) => resolution / 2 ** i);
  const inferred = official(need('quantize.embedding.weight')[0]!, [250, 300]);
  inferred.ddconfig = {
    double_z: need('encoder.conv_out.weight')[0] === 2 * z_channels,
    z_channels,
    resolution,
    in_channels: convIn[1]!,
    out_ch: need('decoder.conv_out.weight')[0]!,
    ch,
    ch_mult,
    num_res_blocks,
    attn_resolutions,
    dropout: 0.0,
  };
  inferred.embed_dim = need('quant_conv.weight')[0]!;
  const arch = JSON.stringify(architecture(inferred));
  for (const name of TOKENIZER_PRESETS) {
    if (JSON.stringify(architecture(tokenizerPreset(name))) === arch) return tokenizerPreset(name);
  }
  return inferred;
}

/**
 * The tokenizer's init_args stored in a checkpoint's Lightning hyper_parameters (`config.model.init_args` as
 * LightningCLI and trainTokenizer write them, `init_args`, or the hyper_parameters themselves when they hold
 * `ddconfig`; OmegaConf containers are unwrapped by plainConfig), laid over `inferred` (the config inferred
 * from the weights). Used only when it validates and describes the same architecture as the weights, so a
 * stale or foreign config never changes what loads; otherwise `inferred` is returned unchanged.
 */
export function configFromTokenizerMeta(hyperParameters: unknown, inferred: ResolvedTokenizerConfig): ResolvedTokenizerConfig {
  const hp = hyperParameters as Record<string, any> | null | undefined;
  if (!hp || typeof hp !== 'object') return inferred;
  const found = [hp.config?.model?.init_args, hp.model?.init_args, hp.init_args, hp].find(
    (c) => c && typeof c === 'object' && !Array.isArray(c) && c.ddconfig && typeof c.ddconfig === 'object',
  );
  if (!found) return inferred;
  let r: ResolvedTokenizerConfig;
  try {
    r = resolveTokenizerConfig({ ...inferred, ...found, ddconfig: { ...inferred.ddconfig, ...found.ddconfig } });
  } catch {
    return inferred;
  }
  return JSON.stringify(architecture(r)) === JSON.stringify(architecture(inferred)) ? r : inferred;
}

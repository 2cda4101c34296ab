/**
 * TransformerConfig: the official `transformer_config.params` of an AR YAML (GPT.__init__ arguments of
 * src/IBQ/modules/transformer/llama.py), plus class_dropout_prob (0.1, fixed in the official code), resolved
 * against its one declaration (lib/transformer/config_fields.ts, generated from the C++ for_each_field). Presets
 * B/L/XL/XXL follow the official configs (IBQ paper, Table 7).
 */
import { presetOrYaml, readConfig } from '../config/read_config.js';
import { resolveFields } from '../config/fields.js';
import { describe } from '../core/errors.js';
import { native } from '../native.js';
import type { StateDict } from '../core/module.js';

export type { TransformerConfig, TransformerPreset } from './config_types.js';
import type { TransformerConfig, TransformerPreset } from './config_types.js';
import { TRANSFORMER_FIELDS, type ResolvedTransformerConfig } from './config_fields.js';

export const TRANSFORMER_PRESETS: readonly TransformerPreset[] = ['B', 'L', 'XL', 'XXL'];

/** Official GPT arguments that this model ignores, as the official GPT does (accepted, not used). */
const IGNORED_FIELDS = ['embd_pdrop', 'n_unmasked', 'max_batch_size', 'max_seq_len', 'use_pretrained_codebook', 'codebook_ckpt_path', 'n_codebook_embd'];

/** The transformer_config.params of an official AR YAML (readConfig's `transformer`). */
export function transformerConfigFromYaml(path: string): TransformerConfig {
  const c = readConfig(path).transformer;
  if (!c) throw new RangeError(`config: ${path} has no model.init_args.transformer_config.params`);
  return c;
}

/**
 * The one check of a transformer config object: its fields against their declaration (TRANSFORMER_FIELDS; the
 * official arguments this model ignores are dropped), then the rules between fields. Defaults filled in, cond_dim
 * absent or null as n_embd.
 * @throws TypeError / RangeError naming `<arg>.<field>`
 */
function checkTransformerConfig(v: unknown, arg: string): ResolvedTransformerConfig {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TypeError(`${arg}: expected an object, got ${describe(v)}`);
  const given: Record<string, unknown> = { ...v };
  for (const k of IGNORED_FIELDS) delete given[k];
  const c = resolveFields<ResolvedTransformerConfig>(TRANSFORMER_FIELDS, given, arg, { what: 'the transformer config', unknown: 'error' });
  c.cond_dim ??= c.n_embd;
  const grid = Math.round(Math.sqrt(c.block_size));
  if (grid * grid !== c.block_size) throw new RangeError(`${arg}.block_size: expected a square number of tokens (2D RoPE grid), got ${c.block_size}`);
  if (c.n_embd % c.n_head !== 0) throw new RangeError(`${arg}.n_embd: expected a multiple of n_head (${c.n_head}), got ${c.n_embd}`);
  const headDim = c.n_embd / c.n_head;
  if (headDim % 4 !== 0) throw new RangeError(`${arg}.n_embd / n_head: the 2D RoPE needs a head size divisible by 4, got ${headDim}`);
  if (c.cond_dim !== c.n_embd) {
    throw new RangeError(`${arg}.cond_dim: the condition is the class embedding, so cond_dim must equal n_embd (${c.n_embd}), got ${c.cond_dim}`);
  }
  const kv = c.n_kv_head ?? c.n_head;
  if (c.n_head % kv !== 0) throw new RangeError(`${arg}.n_kv_head: expected a divisor of n_head (${c.n_head}), got ${kv}`);
  return c;
}

/**
 * A full, validated config (defaults filled in) from an object, a preset name or a YAML path, with its
 * exact parameter count (sum of numel over the official module's parameters) and the preset it equals.
 * @throws TypeError / RangeError naming the field that is wrong
 */
export function resolveTransformerConfig(
  cfg: TransformerConfig | TransformerPreset | string,
): Required<TransformerConfig> & { parameterCount: number; preset: TransformerPreset | '' } {
  let obj: TransformerConfig | string = cfg;
  if (typeof cfg === 'string' && presetOrYaml(cfg, TRANSFORMER_PRESETS, 'config') === 'yaml') obj = transformerConfigFromYaml(cfg);
  if (typeof obj !== 'string') obj = checkTransformerConfig(obj, 'config');
  return native.transformerConfig(obj) as unknown as Required<TransformerConfig> & { parameterCount: number; preset: TransformerPreset | '' };
}

/** The exact parameter count of a config or preset (no weights are allocated). */
export function transformerParameterCount(cfg: TransformerConfig | TransformerPreset): number {
  return resolveTransformerConfig(cfg).parameterCount;
}

/**
 * The preset whose weight shapes a state dict has (tok_emb, class table, width, depth, FFN), or undefined.
 * Accepts the state dict itself or a map of its shapes.
 */
export function presetFromShapes(sd: StateDict | Map<string, number[]>): TransformerPreset | undefined {
  const shape = (k: string) => {
    const v = sd.get(k);
    return Array.isArray(v) ? v : v?.shape;
  };
  const tok = shape('tok_emb.weight');
  const cls = shape('class_emb.embedding_table.weight');
  if (!tok || !cls) return undefined;
  let layers = 0;
  while (sd.has(`blocks.${layers}.attention.wqkv.weight`)) layers++;
  for (const p of TRANSFORMER_PRESETS) {
    const c = resolveTransformerConfig(p);
    const ffn = shape('blocks.0.feed_forward.w1.weight');
    if (tok[0] === c.vocab_size && tok[1] === c.n_embd && cls[0] === c.class_num + 1 && layers === c.n_layer &&
        shape('blocks.0.attention.wqkv.weight')?.[0] === 3 * c.n_embd && (!ffn || ffn[1] === c.n_embd)) {
      return p;
    }
  }
  return undefined;
}

/**
 * TransformerConfig: the official `transformer_config.params` of an AR YAML (GPT.__init__ arguments of
 * src/IBQ/modules/transformer/llama.py), plus class_dropout_prob (0.1, fixed in the official code). Presets
 * B/L/XL/XXL follow the official configs (IBQ paper, Table 7).
 */
import { presetOrYaml, readConfig } from '../config/read_config.js';
import { describe } from '../core/errors.js';
import { native } from '../native.js';
import type { StateDict } from '../core/module.js';

export type { TransformerConfig, TransformerPreset } from './config_types.js';
import type { TransformerConfig, TransformerPreset } from './config_types.js';

export const TRANSFORMER_PRESETS: readonly TransformerPreset[] = ['B', 'L', 'XL', 'XXL'];

/** Official GPT arguments that this model ignores, as the official GPT does (accepted, not used). */
const IGNORED_FIELDS = ['embd_pdrop', 'n_unmasked', 'max_batch_size', 'max_seq_len', 'use_pretrained_codebook', 'codebook_ckpt_path', 'n_codebook_embd'];
/** The config's fields come from the native config (native/ibq/transformer/transformer.h, the one list), plus the ignored ones. */
const KNOWN = new Set([...native.transformerConfigFields(), ...IGNORED_FIELDS]);

/** The transformer_config.params of an official AR YAML (readConfig's `transformer`). */
export function transformerConfigFromYaml(path: string): TransformerConfig {
  const c = readConfig(path).transformer;
  if (!c) throw new RangeError(`config: ${path} has no model.init_args.transformer_config.params`);
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
  if (typeof obj !== 'string') {
    if (obj === null || typeof obj !== 'object') throw new TypeError(`config: expected an object, got ${describe(obj)}`);
    for (const k of Object.keys(obj)) {
      if (!KNOWN.has(k)) throw new RangeError(`config.${k}: not a field of the transformer config`);
    }
    for (const k of ['vocab_size', 'block_size', 'n_layer', 'n_head', 'n_embd', 'class_num'] as const) {
      if (obj[k] === undefined) throw new TypeError(`config.${k}: required`);
    }
  }
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

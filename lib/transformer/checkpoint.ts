/**
 * Reading AR checkpoints for Transformer.fromCheckpoint: the official Lightning files keep the model under
 * `transformer.` (next to first_stage_model.* of the frozen tokenizer), and their hyper_parameters may carry
 * the transformer_config (trainTransformer's checkpoints always do), possibly as an OmegaConf DictConfig (read
 * through plainConfig). A safetensors file (recognised by its bytes) is read as a bare state dict.
 */
import { describe } from '../core/errors.js';
import { loadWeightsFile, plainConfig, stripWrapperPrefixes } from '../io/index.js';
import type { StateDict } from '../core/module.js';
import { Tensor } from '../core/tensor.js';
import type { TransformerConfig, TransformerPreset } from './config_types.js';

/** A checkpoint path, a loaded Checkpoint, or a bare state dict. */
export type CheckpointLike = string | { stateDict: StateDict; meta?: Record<string, unknown> } | StateDict;

const PREFIX = 'transformer.';

/** The transformer's own weights: the `transformer.` keys without the prefix, or all keys when none has it. */
export function transformerStateDict(sd: StateDict): StateDict {
  const keys = [...sd.keys()];
  if (!keys.some((k) => k.startsWith(PREFIX))) return sd;
  return new Map(keys.filter((k) => k.startsWith(PREFIX)).map((k) => [k.slice(PREFIX.length), sd.get(k)!]));
}

/** transformer_config.params from Lightning hyper_parameters (config.transformer_config or transformer_config). */
export function configFromMeta(meta: Record<string, unknown> | undefined): TransformerConfig | undefined {
  const hp = plainConfig(meta?.hyper_parameters) as Record<string, any> | undefined;
  const tc = hp?.config?.transformer_config ?? hp?.transformer_config;
  const params = tc?.params;
  return params && typeof params === 'object' && !Array.isArray(params) ? (params as TransformerConfig) : undefined;
}

/** hyper_parameters.class_names of an AR checkpoint (the names of the training data's class ids), if any. */
export function classNamesFromMeta(meta: Record<string, unknown> | undefined): string[] | undefined {
  const hp = plainConfig(meta?.hyper_parameters) as Record<string, unknown> | undefined;
  const names = hp?.class_names;
  return Array.isArray(names) && names.every((n) => typeof n === 'string') ? (names as string[]) : undefined;
}

function isStateDict(v: unknown): v is StateDict {
  return v instanceof Map && [...v.values()].every((t) => t instanceof Tensor);
}

export async function loadCheckpointLike(
  src: CheckpointLike,
  config: TransformerConfig | TransformerPreset | string | undefined,
): Promise<{ stateDict: StateDict; config?: TransformerConfig | TransformerPreset | string; classNames?: string[] }> {
  let sd: StateDict;
  let meta: Record<string, unknown> | undefined;
  if (typeof src === 'string') {
    ({ stateDict: sd, meta } = await loadWeightsFile(src));
  } else if (isStateDict(src)) {
    sd = src;
  } else if (src && typeof src === 'object' && isStateDict((src as { stateDict?: unknown }).stateDict)) {
    sd = (src as { stateDict: StateDict }).stateDict;
    meta = (src as { meta?: Record<string, unknown> }).meta;
  } else {
    throw new TypeError(`checkpoint: expected a path, a Checkpoint or a Map<string, Tensor>, got ${describe(src)}`);
  }
  const cfg = config !== undefined ? config : configFromMeta(meta);
  return { stateDict: transformerStateDict(stripWrapperPrefixes(sd).stateDict), config: cfg, classNames: classNamesFromMeta(meta) };
}

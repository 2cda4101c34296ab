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

/**
 * The transformer's own weights: the `transformer.` keys without the prefix, or all keys when none has it;
 * `skipped`: the other keys (the frozen tokenizer's first_stage_model.*, ...), not the transformer's.
 */
export function transformerStateDict(sd: StateDict): { stateDict: StateDict; skipped: string[] } {
  const keys = [...sd.keys()];
  if (!keys.some((k) => k.startsWith(PREFIX))) return { stateDict: sd, skipped: [] };
  return {
    stateDict: new Map(keys.filter((k) => k.startsWith(PREFIX)).map((k) => [k.slice(PREFIX.length), sd.get(k)!])),
    skipped: keys.filter((k) => !k.startsWith(PREFIX)),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map);

/**
 * The transformer config of Lightning hyper_parameters: `transformer_config` (or `config.transformer_config`)
 * in the official form `{ target, params }`, or flat (the params themselves, as ARTrainConfig allows).
 */
export function configFromMeta(meta: Record<string, unknown> | undefined): TransformerConfig | undefined {
  const hp = plainConfig(meta?.hyper_parameters);
  if (!isObject(hp)) return undefined;
  const tc = (isObject(hp.config) ? hp.config.transformer_config : undefined) ?? hp.transformer_config;
  if (!isObject(tc)) return undefined;
  if ('params' in tc || 'target' in tc) return isObject(tc.params) ? (tc.params as unknown as TransformerConfig) : undefined;
  return tc as unknown as TransformerConfig;
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
): Promise<{
  stateDict: StateDict;
  config?: TransformerConfig | TransformerPreset | string;
  classNames?: string[];
  /** Keys of other modules, not loaded. */
  skipped: string[];
  /** Wrapper prefix removed from every key ('module.', '_orig_mod.'), '' when none. */
  stripped: string;
}> {
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
  const { stateDict: bare, stripped } = stripWrapperPrefixes(sd);
  const own = transformerStateDict(bare);
  return { stateDict: own.stateDict, skipped: own.skipped, stripped, config: cfg, classNames: classNamesFromMeta(meta) };
}

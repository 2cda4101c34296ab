/**
 * readConfig: YAML files in the official configs/IBQ/gpu/*.yaml layout (LightningCLI: model.class_path and
 * model.init_args). It returns the model sections as written; each model folder resolves its own (lib/tokenizer:
 * resolveTokenizerConfig, lib/transformer: resolveTransformerConfig). The tokenizer part is the official
 * `model.init_args` of a tokenizer YAML, or the `first_stage_config.params` of a transformer YAML. The transformer
 * part is the official `model.init_args.transformer_config.params` of an AR YAML (Net2NetTransformer), with the
 * optimisation fields of init_args next to it. The parsed YAML stays available as `raw`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';

import { checkString } from '../core/errors.js';
import { lightningSettings, type FieldNote, type LightningSettings } from './lightning.js';
import type { TokenizerConfig } from '../tokenizer/config_types.js';
import type { TransformerConfig } from '../transformer/config_types.js';

/**
 * Whether a config string is a preset name or a YAML path: a path when it names an existing file or ends in
 * .yaml/.yml; otherwise it must be one of `presets`.
 * @throws RangeError `<arg>: unknown preset 'X', expected one of A, B (or a YAML config path)`
 */
export function presetOrYaml(v: string, presets: readonly string[], arg: string): 'preset' | 'yaml' {
  if (presets.includes(v)) return 'preset';
  if (/\.ya?ml$/i.test(v) || existsSync(v)) return 'yaml';
  throw new RangeError(`${arg}: unknown preset '${v}', expected one of ${presets.join(', ')} (or a YAML config path)`);
}

/** Optimisation fields of the official Net2NetTransformer init_args (lr_wd_annealing of the AR training). */
export interface ARTrainingSettings {
  learning_rate?: number;
  weight_decay?: number;
  /** Warmup epochs. */
  wp?: number;
  wp0?: number;
  wpe?: number;
  twde?: number;
}
const AR_TRAINING_FIELDS = ['learning_rate', 'weight_decay', 'wp', 'wp0', 'wpe', 'twde'] as const;

export interface IBQConfig {
  /** The file read. */
  path: string;
  /** The whole parsed YAML document. */
  raw: Record<string, unknown>;
  /** `model.class_path`, e.g. 'src.IBQ.models.ibqgan.IBQ'. */
  classPath?: string;
  /**
   * The tokenizer's init_args as written (validated, with defaults filled in, when a Tokenizer is made from it:
   * resolveTokenizerConfig); absent when the file describes no tokenizer.
   */
  tokenizer?: TokenizerConfig;
  /** Where `tokenizer` is in the file: 'model.init_args' or 'model.init_args.first_stage_config.params'. */
  tokenizerSection?: string;
  /**
   * `model.init_args.transformer_config.params` of an AR YAML, as written (validated when a Transformer is
   * made from it: resolveTransformerConfig); absent when the file describes no AR model.
   */
  transformer?: TransformerConfig;
  /** The optimisation fields of an AR YAML's init_args (only those present); absent without `transformer`. */
  arTraining?: ARTrainingSettings;
  /** The Lightning `trainer` and `data` settings a training command honours (absent ones: undefined). */
  run: RunSettings;
}

/**
 * Settings of the official `trainer:` and `data:` sections: trainer.max_epochs, trainer.precision
 * ('16-mixed' / '16' -> float16 autocast, 'bf16-mixed' / 'bf16' -> bfloat16, '32' / '32-true' -> none),
 * trainer.gradient_clip_val, trainer.devices and trainer.num_nodes (processes: run them with `ibq launch`),
 * data.init_args.batch_size (per process) and the training image size (data.init_args.train.params.config.size).
 */
export interface RunSettings {
  maxEpochs?: number;
  precision?: string;
  autocast?: 'bfloat16' | 'float16';
  gradientClipVal?: number;
  devices?: number;
  numNodes?: number;
  batchSize?: number;
  imageSize?: number;
  /** The Lightning fields beyond these (callbacks, logger, validation cadence, seed, ckpt_path, ...). */
  lightning?: LightningSettings;
  /** A note for every field of the top level, `trainer` and `data`: honoured, or what happens instead. */
  fieldNotes?: FieldNote[];
}

function runSettings(raw: unknown, yamlPath: string): RunSettings {
  const get = (...path: string[]) => path.reduce<unknown>((a, k) => (a && typeof a === 'object' ? (a as Record<string, unknown>)[k] : undefined), raw);
  const int = (v: unknown, where: string) => {
    if (v === undefined || v === null || v === 'auto') return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new RangeError(`${yamlPath}: ${where}: expected a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const precision = get('trainer', 'precision');
  const p = precision === undefined || precision === null ? undefined : String(precision);
  const autocast = p === undefined ? undefined : /^(16|16-mixed)$/.test(p) ? 'float16' : /^bf16(-mixed)?$/.test(p) ? 'bfloat16' : /^32(-true)?$/.test(p) ? undefined : null;
  if (autocast === null) throw new RangeError(`${yamlPath}: trainer.precision: expected 16-mixed, bf16-mixed or 32, got ${JSON.stringify(precision)}`);
  const clip = get('trainer', 'gradient_clip_val');
  if (clip !== undefined && clip !== null && (typeof clip !== 'number' || !(clip >= 0))) {
    throw new RangeError(`${yamlPath}: trainer.gradient_clip_val: expected a number >= 0, got ${JSON.stringify(clip)}`);
  }
  const { settings: lightning, notes: fieldNotes } = lightningSettings(raw, yamlPath);
  return {
    lightning,
    fieldNotes,
    maxEpochs: int(get('trainer', 'max_epochs'), 'trainer.max_epochs'),
    precision: p,
    autocast: autocast ?? undefined,
    gradientClipVal: typeof clip === 'number' ? clip : undefined,
    devices: int(get('trainer', 'devices'), 'trainer.devices'),
    numNodes: int(get('trainer', 'num_nodes'), 'trainer.num_nodes'),
    batchSize: int(get('data', 'init_args', 'batch_size'), 'data.init_args.batch_size'),
    imageSize: int(get('data', 'init_args', 'train', 'params', 'config', 'size'), 'data.init_args.train.params.config.size'),
  };
}

const LayoutSchema = z.looseObject({
  model: z.looseObject({
    class_path: z.string().optional(),
    init_args: z.record(z.string(), z.unknown()).optional(),
  }),
});

/**
 * Reads an official-layout YAML.
 * @throws Error naming the file when it cannot be read or parsed; RangeError naming the field when a section is
 *   not a mapping or a run setting is malformed.
 */
export function readConfig(yamlPath: string): IBQConfig {
  checkString(yamlPath, 'yamlPath');
  let raw: unknown;
  try {
    raw = parse(readFileSync(yamlPath, 'utf8'));
  } catch (err) {
    throw new Error(`${yamlPath}: cannot read the YAML config: ${(err as Error).message.split('\n')[0]}`);
  }
  const layout = LayoutSchema.safeParse(raw);
  if (!layout.success) {
    throw new RangeError(`${yamlPath}: expected the official layout with a 'model' section (model.class_path, model.init_args)`);
  }
  const model = layout.data.model;
  const args = model.init_args ?? {};
  const out: IBQConfig = { path: yamlPath, raw: raw as Record<string, unknown>, classPath: model.class_path, run: runSettings(raw, yamlPath) };
  const firstStage = (args.first_stage_config as { params?: unknown } | undefined)?.params;
  if ('ddconfig' in args) {
    out.tokenizer = args as TokenizerConfig;
    out.tokenizerSection = 'model.init_args';
  } else if (firstStage && typeof firstStage === 'object' && 'ddconfig' in firstStage) {
    out.tokenizer = firstStage as TokenizerConfig;
    out.tokenizerSection = 'model.init_args.first_stage_config.params';
  }
  const tc = args.transformer_config as { params?: unknown } | undefined;
  if (tc !== undefined) {
    if (tc === null || typeof tc !== 'object' || tc.params === null || typeof tc.params !== 'object' || Array.isArray(tc.params)) {
      throw new RangeError(`${yamlPath}: model.init_args.transformer_config.params: expected a mapping of GPT arguments`);
    }
    out.transformer = tc.params as TransformerConfig;
    out.arTraining = {};
    for (const k of AR_TRAINING_FIELDS) {
      const v = args[k];
      if (v === undefined) continue;
      const n = typeof v === 'string' ? Number(v) : v; // a quoted number is accepted
      if (typeof n !== 'number' || !Number.isFinite(n)) throw new RangeError(`${yamlPath}: model.init_args.${k}: expected a number, got ${JSON.stringify(v)}`);
      out.arTraining[k] = n;
    }
  }
  return out;
}

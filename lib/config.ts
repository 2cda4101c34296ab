/**
 * readConfig: YAML files in the official configs/IBQ/gpu/*.yaml layout (LightningCLI: model.class_path and
 * model.init_args). The tokenizer part is the official `model.init_args` of a tokenizer YAML, or the
 * `first_stage_config.params` of a transformer YAML. The parsed YAML stays available as `raw` (the transformer
 * part is read from it by lib/ code of that area).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';

import { checkString } from './errors.js';
import { resolveTokenizerConfig, type ResolvedTokenizerConfig } from './tokenizer_config.js';

export interface IBQConfig {
  /** The file read. */
  path: string;
  /** The whole parsed YAML document. */
  raw: Record<string, unknown>;
  /** `model.class_path`, e.g. 'src.IBQ.models.ibqgan.IBQ'. */
  classPath?: string;
  /** The tokenizer's init_args with defaults filled in; absent when the file describes no tokenizer. */
  tokenizer?: ResolvedTokenizerConfig;
}

const LayoutSchema = z.looseObject({
  model: z.looseObject({
    class_path: z.string().optional(),
    init_args: z.record(z.string(), z.unknown()).optional(),
  }),
});

/**
 * Reads an official-layout YAML.
 * @throws Error naming the file when it cannot be read or parsed; TypeError/RangeError naming the field
 *   (e.g. `model.init_args.ddconfig.ch`) when the tokenizer part is malformed.
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
  const out: IBQConfig = { path: yamlPath, raw: raw as Record<string, unknown>, classPath: model.class_path };
  const firstStage = (args.first_stage_config as { params?: unknown } | undefined)?.params;
  if ('ddconfig' in args) out.tokenizer = resolveTokenizerConfig(args, `${yamlPath}: model.init_args`);
  else if (firstStage && typeof firstStage === 'object' && 'ddconfig' in firstStage) {
    out.tokenizer = resolveTokenizerConfig(firstStage, `${yamlPath}: model.init_args.first_stage_config.params`);
  }
  return out;
}

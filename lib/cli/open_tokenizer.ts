/** The frozen tokenizer of a command's --tokenizer CKPT, with its config from the flags. */
import { readConfig } from '../config/read_config.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';

/** The tokenizer config to load TOK.ckpt with: --tokenizer-config, else the AR YAML's first stage, else inferred. */
export function tokenizerConfigFlag(o: { config?: string; tokenizerConfig?: string }): string | undefined {
  if (o.tokenizerConfig !== undefined) return o.tokenizerConfig;
  if (o.config !== undefined && /\.ya?ml$/i.test(o.config) && readConfig(o.config).tokenizer) return o.config;
  return undefined;
}

/** The frozen tokenizer of --tokenizer CKPT (eval mode). */
export async function openTokenizer(o: { tokenizer: string; config?: string; tokenizerConfig?: string; ema?: boolean; device?: string }): Promise<Tokenizer> {
  const tok = await Tokenizer.fromCheckpoint(o.tokenizer, { config: tokenizerConfigFlag(o), ema: !!o.ema, device: o.device });
  return tok.eval();
}


/**
 * The image size of eval-tokenizer, reconstruct and tokenize: --image-size, else the tokenizer's training
 * resolution (ddconfig.resolution); `line` states it for the output.
 */
export function imageSizeFor(given: number | undefined, tok: { config: { ddconfig: { resolution: number } } }): { size: number; line: string } {
  const res = tok.config.ddconfig.resolution;
  if (given !== undefined) return { size: given, line: `image size ${given} (--image-size; the tokenizer was trained at ${res})` };
  return { size: res, line: `image size ${res} (the tokenizer's training resolution, ddconfig.resolution; --image-size to change)` };
}

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


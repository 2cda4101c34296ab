/** Inputs of the AR data-parallel tests: an official-layout YAML with dropouts off and n random token maps with labels. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

import { saveSafetensors, tensor } from '../../dist/index.js';

export const AR_PARAMS = {
  vocab_size: 64, block_size: 16, n_layer: 2, n_head: 2, n_embd: 32, class_num: 4, multiple_of: 32,
  resid_dropout_p: 0, ffn_dropout_p: 0, attn_dropout_p: 0, token_drop: 0, drop_path_rate: 0, class_dropout_prob: 0,
};

/** Writes `dir/ar.yaml` and `dir/tokens.safetensors` (n token maps of AR_PARAMS); returns their paths. */
export async function writeArInputs(dir: string, n: number): Promise<{ yaml: string; tokens: string }> {
  const yaml = join(dir, 'ar.yaml');
  writeFileSync(yaml, stringify({
    model: {
      class_path: 'src.IBQ.models.cond_transformer_llama.Net2NetTransformer',
      init_args: {
        learning_rate: 3e-3, weight_decay: 0.05, wp: 0, wp0: 0.005, wpe: 0.01, twde: 0.01,
        transformer_config: { target: 'src.IBQ.modules.transformer.llama.GPT', params: AR_PARAMS },
      },
    },
  }));
  const tok = new BigInt64Array(n * AR_PARAMS.block_size);
  let s = 12345;
  for (let i = 0; i < tok.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    tok[i] = BigInt(s % AR_PARAMS.vocab_size);
  }
  const lab = BigInt64Array.from({ length: n }, (_, i) => BigInt(i % AR_PARAMS.class_num));
  const tokens = join(dir, 'tokens.safetensors');
  await saveSafetensors(tokens, new Map([['tokens', tensor(tok, [n, AR_PARAMS.block_size])], ['labels', tensor(lab, [n])]]));
  return { yaml, tokens };
}

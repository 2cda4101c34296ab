import type { Command } from 'commander';

import { info } from '../core/info.js';
import { resolveTransformerConfig, TRANSFORMER_PRESETS } from '../transformer/config.js';

export function register(program: Command): void {
  program
    .command('info')
    .description('print the libtorch version, CUDA availability and thread count')
    .option('--json', 'print JSON')
    .option('--preset <name>', `print an AR transformer preset's exact parameter count (${TRANSFORMER_PRESETS.join(', ')})`)
    .action((opts: { json?: boolean; preset?: string }) => {
      if (opts.preset !== undefined) {
        if (!(TRANSFORMER_PRESETS as readonly string[]).includes(opts.preset)) {
          throw new RangeError(`--preset: expected one of ${TRANSFORMER_PRESETS.join(', ')}, got '${opts.preset}'`);
        }
        const c = resolveTransformerConfig(opts.preset);
        if (opts.json) console.log(JSON.stringify({ preset: opts.preset, parameters: c.parameterCount, config: c }));
        else {
          console.log(
            `IBQ-AR-${opts.preset}: ${c.parameterCount} parameters (n_layer ${c.n_layer}, n_head ${c.n_head}, ` +
              `n_embd ${c.n_embd}, vocab_size ${c.vocab_size}, block_size ${c.block_size}, class_num ${c.class_num})`,
          );
        }
        return;
      }
      const i = info();
      if (opts.json) console.log(JSON.stringify(i));
      else {
        console.log(`libtorch ${i.libtorch}, cuda: ${i.cuda} (${i.cudaDevices} devices), threads: ${i.threads} (${i.threadsSource}: ${i.threadsReason})`);
        console.log(`native bfloat16: ${i.nativeBf16 ? 'yes' : 'no'}, quantizer kernels: ${i.quantizerKernels.join(', ') || 'none'}`);
      }
    });
}

import type { Command } from 'commander';

import { info } from '../info.js';

export function register(program: Command): void {
  program
    .command('info')
    .description('print the libtorch version, CUDA availability and thread count')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const i = info();
      if (opts.json) console.log(JSON.stringify(i));
      else console.log(`libtorch ${i.libtorch}, cuda: ${i.cuda} (${i.cudaDevices} devices), threads: ${i.threads}`);
    });
}

/**
 * The demo command (what `npm run demo` runs after scripts/setup):
 *   ibq demo [--data DIR] [--max-steps N] [--out DIR] [--device D] [--max-images N] [--per-class N] [--lpips-weights DIR]
 * Trains a small IBQ tokenizer and a class-conditional AR transformer on real images (default: the bundled
 * Fashion-MNIST subset), with progress bars on stderr; prints the figures and writes reconstructions.png,
 * samples.png and metrics.json to --out. `npm run demo` exports IBQ_DEMO_SETUP_START (epoch ms) before setup,
 * so metrics.json splits setup/build time from the run itself.
 */
import type { Command } from 'commander';

import { defaultSettings, DemoInterrupted, runDemo, type DemoUI } from '../demo/index.js';
import { intArg } from './parse.js';
import { progressBar, stopSignals } from './progress.js';

/** Environment variable holding the epoch ms at which `npm run demo` started (set by package.json's script). */
export const SETUP_START_ENV = 'IBQ_DEMO_SETUP_START';

interface Flags {
  data?: string;
  out: string;
  maxSteps?: number;
  maxImages?: number;
  perClass: number;
  device?: string;
  lpipsWeights?: string;
}

function setupStart(): number | undefined {
  const v = process.env[SETUP_START_ENV];
  const n = v === undefined ? NaN : Number(v);
  return Number.isFinite(n) && n > 0 && n <= Date.now() ? n : undefined;
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('train a small IBQ tokenizer and class-conditional generator on real images; write figures and metrics')
    .option('--data <dir>', 'IDX files (MNIST layout) or an image folder with class sub-folders (default: bundled Fashion-MNIST subset)')
    .option('--out <dir>', 'output folder', 'out/demo')
    .option('--max-steps <n>', 'cap the training steps of the tokenizer and of the transformer', intArg('--max-steps'))
    .option('--max-images <n>', 'cap the training images (quick runs)', intArg('--max-images'))
    .option('--per-class <n>', 'images sampled per class (samples.png rows, class consistency); not the training set: see --max-images',
      intArg('--per-class'), defaultSettings().sampling.perClass)
    .option('--device <device>', 'cpu or cuda[:i]')
    .option('--lpips-weights <dir>', 'folder with vgg16-397923af.pth and vgg.pth: turns the LPIPS loss on (default $IBQ_LPIPS_WEIGHTS)')
    .action(async (o: Flags) => {
      const stop = stopSignals('stopping the demo');
      const ui: DemoUI = { bar: (total, unit, fields) => progressBar(total, unit, fields), log: (line) => console.log(line) };
      try {
        await runDemo({
          data: o.data, out: o.out, maxSteps: o.maxSteps, maxImages: o.maxImages,
          perClass: o.perClass, device: o.device, lpipsWeights: o.lpipsWeights, setupStartedAt: setupStart(),
          ui, signal: stop.signal,
        });
      } catch (err) {
        // Ctrl-C (or an abort during sampling): say where the checkpoints are and exit 130 like the training commands
        if (!(err instanceof DemoInterrupted) && !(stop.signal.aborted && (err as Error)?.name === 'AbortError')) throw err;
        console.error(`ibq demo: ${(err as Error).message}`);
        process.exitCode = stop.exitCode ?? 130;
      } finally {
        stop.dispose();
      }
    });
}

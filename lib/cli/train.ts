/**
 * Tokenizer training command:
 *   ibq train-tokenizer --config YAML --data DIR [--out DIR] [--resume FILE] [--max-steps N] [--max-epochs N]
 *     [--batch-size N] [--seed N] [--checkpoint-every N] [--lpips-vgg16 FILE --lpips-lin FILE | --lpips-ckpt FILE]
 *     [--init FILE] [--image-size N] [--autocast bfloat16] [--device cpu]
 * Defaults come from the YAML (trainer.max_epochs, data.init_args.batch_size, the train size). A progress bar
 * shows steps/s, ETA and the main losses; Ctrl-C saves last.ckpt and exits cleanly.
 */
import type { Command } from 'commander';

import { readConfig } from '../config/read_config.js';
import { trainTokenizer, type TrainTokenizerOptions } from '../train/tokenizer.js';
import { progressBar, sigintAbort, type Bar } from './progress.js';

interface Flags {
  config: string;
  data: string;
  out: string;
  resume?: string;
  maxSteps?: string;
  maxEpochs?: string;
  batchSize?: string;
  seed: string;
  checkpointEvery: string;
  lpipsVgg16?: string;
  lpipsLin?: string;
  lpipsCkpt?: string;
  init?: string;
  imageSize?: string;
  autocast?: string;
  device?: string;
}

function int(v: string | undefined, flag: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${flag}: expected an integer >= ${min}, got '${v}'`);
  return n;
}

/** trainer.max_epochs, data.init_args.batch_size and the train size of an official YAML (absent: undefined). */
function yamlDefaults(raw: Record<string, unknown>): { maxEpochs?: number; batchSize?: number; size?: number } {
  const get = (o: unknown, ...path: string[]) => path.reduce<unknown>((a, k) => (a && typeof a === 'object' ? (a as Record<string, unknown>)[k] : undefined), o);
  const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined);
  return {
    maxEpochs: num(get(raw, 'trainer', 'max_epochs')),
    batchSize: num(get(raw, 'data', 'init_args', 'batch_size')),
    size: num(get(raw, 'data', 'init_args', 'train', 'params', 'config', 'size')),
  };
}

export function register(program: Command): void {
  program
    .command('train-tokenizer')
    .description('train an IBQ tokenizer (official VQLPIPSWithDiscriminator objective) from an official-layout YAML')
    .requiredOption('--config <yaml>', 'official-layout YAML (e.g. configs/IBQ/gpu/imagenet_ibqgan_16384.yaml)')
    .requiredOption('--data <dir|filelist>', 'images: ImageNet root (train/<wnid>/*.JPEG), class folders, a flat folder or a filelist')
    .option('--out <dir>', 'output folder (checkpoints, log.jsonl)', 'checkpoints/tokenizer')
    .option('--resume <file>', 'continue from a checkpoint (e.g. <out>/last.ckpt)')
    .option('--max-steps <n>', 'stop after n steps in total')
    .option('--max-epochs <n>', 'epochs (default: trainer.max_epochs of the YAML)')
    .option('--batch-size <n>', 'images per step (default: data.init_args.batch_size of the YAML)')
    .option('--seed <n>', 'seed of the initialisation, shuffling and crops', '0')
    .option('--checkpoint-every <n>', 'also save step=N.ckpt every n steps (0: only last.ckpt)', '1000')
    .option('--lpips-vgg16 <file>', 'torchvision vgg16 weights (vgg16-397923af.pth) for the LPIPS loss')
    .option('--lpips-lin <file>', 'LPIPS v0.1 lin layers (vgg.pth)')
    .option('--lpips-ckpt <file>', 'a tokenizer training checkpoint holding loss.perceptual_loss.*')
    .option('--init <file>', 'start from these weights (tokenizer keys, and loss.* / model_ema.* when present)')
    .option('--image-size <n>', 'training image side (default: the YAML train size or ddconfig.resolution)')
    .option('--autocast <dtype>', 'mixed precision: bfloat16 (CPU, CUDA) or float16 (CUDA)')
    .option('--device <device>', 'cpu or cuda[:i]')
    .action(async (o: Flags) => {
      const cfg = readConfig(o.config);
      const d = yamlDefaults(cfg.raw);
      if ((o.lpipsVgg16 === undefined) !== (o.lpipsLin === undefined)) throw new RangeError('--lpips-vgg16 and --lpips-lin go together');
      if (o.autocast !== undefined && o.autocast !== 'bfloat16' && o.autocast !== 'float16') {
        throw new RangeError(`--autocast: expected bfloat16 or float16, got '${o.autocast}'`);
      }
      if (o.autocast === 'float16' && !(o.device ?? 'cpu').startsWith('cuda')) {
        throw new RangeError('--autocast float16: needs --device cuda; on the CPU libtorch 1.13 autocasts to bfloat16 only (use --autocast bfloat16)');
      }
      const maxSteps = int(o.maxSteps, '--max-steps');
      const maxEpochs = int(o.maxEpochs, '--max-epochs') ?? (maxSteps === undefined ? d.maxEpochs : undefined) ?? (maxSteps === undefined ? 1 : undefined);
      const batchSize = int(o.batchSize, '--batch-size') ?? d.batchSize ?? 4;
      const stop = sigintAbort('saving last.ckpt after the current step');
      let bar: Bar | undefined;
      const opts: TrainTokenizerOptions = {
        data: o.data,
        outDir: o.out,
        resume: o.resume,
        maxSteps,
        maxEpochs,
        batchSize,
        seed: int(o.seed, '--seed', 0),
        checkpointEvery: int(o.checkpointEvery, '--checkpoint-every', 0),
        perceptual: o.lpipsVgg16 ? { vgg16: o.lpipsVgg16, lin: o.lpipsLin! } : o.lpipsCkpt,
        init: o.init,
        imageSize: int(o.imageSize, '--image-size') ?? d.size,
        autocast: o.autocast as TrainTokenizerOptions['autocast'],
        device: o.device,
        signal: stop.signal,
        onStep: (s) => {
          const f = (k: string) => (s.log[k] ?? NaN).toFixed(4);
          bar ??= progressBar(s.totalSteps, 'steps', ['loss', 'rec', 'disc']);
          bar.update(s.step + 1, { loss: f('train/total_loss'), rec: f('train/reconstruct_loss'), disc: f('train/disc_loss') });
        },
      };
      try {
        const r = await trainTokenizer(o.config, opts);
        bar?.stop();
        bar = undefined;
        const why = r.stopped === 'aborted' ? 'interrupted' : 'done';
        if (r.stopped === 'aborted') process.exitCode = 130; // like train-ar and sample after SIGINT
        console.log(`${why} at step ${r.globalStep} (epoch ${r.epoch}); checkpoint ${r.lastCheckpoint ?? '-'}; log ${r.logPath}` +
          (r.skipped ? `; ${r.skipped} unreadable files skipped` : ''));
      } finally {
        bar?.stop();
        stop.dispose();
      }
    });
}

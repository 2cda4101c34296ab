/**
 * The training commands, with the same flags for the same things (lib/cli/train_flags.ts):
 *   ibq train-tokenizer --config YAML --data DIR|FILELIST [training flags] [--lpips-vgg16 FILE --lpips-lin FILE |
 *     --lpips-ckpt FILE] [--init FILE] [--image-size N]
 *   ibq train-ar --config YAML|PRESET (--tokens FILE | --tokenizer CKPT --data DIR) [training flags] [--image-size N]
 * Defaults come from the official YAML: trainer.max_epochs, trainer.precision (as --autocast where the device
 * allows it), trainer.gradient_clip_val, data.init_args.batch_size and the train image size; trainer.devices and
 * trainer.num_nodes are run with `ibq launch`. Progress on stderr; SIGINT/SIGTERM save last.ckpt and exit 130/143.
 */
import type { Command } from 'commander';

import { presetOrYaml, readConfig, type IBQConfig, type RunSettings } from '../config/read_config.js';
import { findLpipsFiles, LPIPS_WEIGHTS_ENV, missingLpips } from '../eval/weights.js';
import { loadSafetensors } from '../io/index.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { TOKENIZER_PRESETS } from '../tokenizer/config.js';
import type { PerceptualSource } from '../tokenizer/trainer.js';
import { openTokenizer } from './open_tokenizer.js';
import { resolveTransformerConfig, TRANSFORMER_PRESETS } from '../transformer/config.js';
import { trainTokenizer, type TrainTokenizerOptions } from '../train/tokenizer.js';
import { trainTransformer, type ARTrainConfig, type TokenData } from '../train/transformer.js';
import { intFlag } from './parse.js';
import { addTrainFlags, runTraining, trainFlagValues, type TrainFlags } from './train_flags.js';

/** --autocast, else the YAML precision where the device supports it. */
function autocastFor(run: RunSettings, flag: TrainFlags): TrainTokenizerOptions['autocast'] {
  if (flag.autocast !== undefined) return trainFlagValues(flag).autocast;
  if (run.autocast === 'bfloat16') return 'bfloat16';
  return run.autocast === 'float16' && (flag.device ?? 'cpu').startsWith('cuda') ? 'float16' : undefined;
}

interface TokenizerFlags extends TrainFlags {
  config: string;
  data: string;
  lpipsWeights?: string;
  lpipsVgg16?: string;
  lpipsLin?: string;
  lpipsCkpt?: string;
  init?: string;
  imageSize?: string;
  shuffleBuffer?: string;
  maxBadImages?: string;
  numWorkers?: string;
}

interface ArFlags extends TrainFlags {
  config: string;
  tokenizer?: string;
  tokenizerConfig?: string;
  ema?: boolean;
  data?: string;
  tokens?: string;
  imageSize?: string;
}

/**
 * The LPIPS weights the flags give: --lpips-weights DIR (else $IBQ_LPIPS_WEIGHTS) holding vgg16-397923af.pth and
 * vgg.pth, the two files named (--lpips-vgg16 FILE --lpips-lin FILE), or a checkpoint's loss.perceptual_loss.*
 * (--lpips-ckpt); undefined when none is given (fine with perceptual_weight 0).
 */
function perceptualSource(o: TokenizerFlags): PerceptualSource | undefined {
  const files = o.lpipsVgg16 !== undefined || o.lpipsLin !== undefined;
  const ways = [o.lpipsWeights !== undefined && '--lpips-weights', files && '--lpips-vgg16/--lpips-lin', o.lpipsCkpt !== undefined && '--lpips-ckpt'];
  const given = ways.filter((w): w is string => typeof w === 'string');
  if (given.length > 1) throw new RangeError(`${given.join(', ')}: give the LPIPS weights one way`);
  if (files) {
    if (o.lpipsVgg16 === undefined || o.lpipsLin === undefined) throw new RangeError('--lpips-vgg16 and --lpips-lin go together');
    return { vgg16: o.lpipsVgg16, lin: o.lpipsLin };
  }
  if (o.lpipsCkpt !== undefined) return o.lpipsCkpt;
  const dir = o.lpipsWeights ?? process.env[LPIPS_WEIGHTS_ENV];
  if (!dir) return undefined;
  const found = findLpipsFiles('vgg', dir);
  if (found) return { vgg16: found.backbone, lin: found.lin };
  // a folder named on the command line must hold them; $IBQ_LPIPS_WEIGHTS without them is as if unset
  if (o.lpipsWeights !== undefined) throw missingLpips('vgg', dir, '--lpips-weights DIR');
  return undefined;
}

/** --config of train-tokenizer: a YAML (with its trainer/data settings) or a preset name (the model's init_args only). */
function tokenizerConfig(config: string): { cfg: IBQConfig | string; run: RunSettings } {
  if (presetOrYaml(config, TOKENIZER_PRESETS, '--config') === 'preset') return { cfg: config, run: {} };
  const cfg = readConfig(config);
  return { cfg: withClip(cfg, cfg.run), run: cfg.run };
}

function registerTokenizer(program: Command): void {
  const cmd = program
    .command('train-tokenizer')
    .description('train an IBQ tokenizer (official VQLPIPSWithDiscriminator objective) from an official-layout YAML or a preset')
    .requiredOption('--config <yaml|preset>', `official-layout YAML (e.g. configs/IBQ/gpu/imagenet_ibqgan_16384.yaml) or ${TOKENIZER_PRESETS.join(', ')}`)
    .requiredOption('--data <dir|filelist|shards>', "images: ImageNet root (train/<wnid>/*.JPEG), class folders, a flat folder, a filelist, " +
      "or WebDataset tar shards ('shards/train-{000000..000127}.tar', lists, globs)")
    .option('--shuffle-buffer <n>', 'WebDataset shards: samples in each rank\'s shuffle buffer (default 1000; 0: shard order only)')
    .option('--max-bad-images <n>', 'bad images skipped before the run stops (default: 0.1% of the samples, at least 10)')
    .option('--num-workers <n>', 'decode worker threads per process (default 0: decoding on libuv\'s pool from the main thread)');
  addTrainFlags(cmd, 'checkpoints/tokenizer')
    .option('--lpips-weights <dir>', `LPIPS loss weights: folder with vgg16-397923af.pth and vgg.pth (default $${LPIPS_WEIGHTS_ENV})`)
    .option('--lpips-vgg16 <file>', 'LPIPS loss weights as two files: torchvision vgg16 weights (vgg16-397923af.pth), with --lpips-lin')
    .option('--lpips-lin <file>', 'LPIPS v0.1 lin layers (vgg.pth), with --lpips-vgg16')
    .option('--lpips-ckpt <file>', 'LPIPS loss weights from a tokenizer training checkpoint holding loss.perceptual_loss.*')
    .option('--init <file>', 'start from these weights (tokenizer keys, and loss.* / model_ema.* when present)')
    .option('--image-size <n>', 'training image side (default: the YAML train size or ddconfig.resolution)')
    .action(async (o: TokenizerFlags) => {
      const { cfg, run } = tokenizerConfig(o.config);
      const perceptual = perceptualSource(o);
      const v = trainFlagValues(o);
      await runTraining(
        { loss: 'train/total_loss', rec: 'train/reconstruct_loss', disc: 'train/disc_loss' },
        ({ signal, onStep }) => trainTokenizer(cfg, {
          ...v, batchSize: v.batchSize ?? run.batchSize ?? 4, signal, onStep,
          data: o.data,
          shuffleBuffer: intFlag(o.shuffleBuffer, '--shuffle-buffer', 0),
          maxBadImages: intFlag(o.maxBadImages, '--max-bad-images', 0),
          numWorkers: intFlag(o.numWorkers, '--num-workers', 0, 64),
          perceptual,
          init: o.init,
          imageSize: intFlag(o.imageSize, '--image-size') ?? run.imageSize,
          autocast: autocastFor(run, o),
          valData: o.valData,
        }),
        (r) => ({ skipped: r.skipped }),
      );
    });
}

/** The tokenizer init_args with trainer.gradient_clip_val applied (the official Lightning trainer clips). */
function withClip(cfg: IBQConfig, run: RunSettings): IBQConfig {
  if (run.gradientClipVal === undefined) return cfg;
  const raw = cfg.raw as { model: { init_args: Record<string, unknown> } };
  if (raw.model.init_args.gradient_clip_val !== undefined) return cfg;
  return { ...cfg, raw: { ...cfg.raw, model: { ...raw.model, init_args: { ...raw.model.init_args, gradient_clip_val: run.gradientClipVal } } } };
}

function arConfig(config: string): { cfg: ARTrainConfig; run: RunSettings } {
  if (/\.ya?ml$/i.test(config)) {
    const c = readConfig(config);
    if (!c.transformer) throw new RangeError(`--config: ${config} has no model.init_args.transformer_config.params`);
    return { cfg: { ...c.arTraining, transformer_config: { params: c.transformer } }, run: c.run };
  }
  if (!(TRANSFORMER_PRESETS as readonly string[]).includes(config)) {
    throw new RangeError(`--config: expected a YAML path or one of ${TRANSFORMER_PRESETS.join(', ')}, got '${config}'`);
  }
  const { parameterCount: _n, preset: _p, ...params } = resolveTransformerConfig(config);
  return { cfg: { transformer_config: { params } }, run: {} };
}

function registerTransformer(program: Command): void {
  const cmd = program
    .command('train-ar')
    .description('train the AR transformer on the indices of a frozen tokenizer (next-token cross-entropy)')
    .requiredOption('--config <yaml|preset>', 'AR config (official YAML layout) or B, L, XL, XXL')
    .option('--tokenizer <ckpt>', 'frozen tokenizer checkpoint (with --data)')
    .option('--tokenizer-config <yaml|preset>', 'tokenizer config (default: the AR YAML first stage, else inferred)')
    .option('--ema', 'use the tokenizer EMA weights (model_ema.*)')
    .option('--data <dir|shards>', 'images: class folders, an ImageNet root with train/, or WebDataset shards with .cls labels (with --tokenizer; each image encoded once across the ranks; tokens cached in --out)')
    .option('--image-size <n>', 'images resized/cropped to n (default: the tokenizer resolution)')
    .option('--tokens <file>', 'pre-computed tokens: safetensors with int64 tokens [N, L] and labels [N]');
  addTrainFlags(cmd, 'runs/ar').action(async (o: ArFlags) => {
    const { cfg, run } = arConfig(o.config);
    const v = trainFlagValues(o);
    let tokens: TokenData | undefined;
    let tok: Tokenizer | undefined;
    if (o.tokens) {
      const m = await loadSafetensors(o.tokens);
      if (!m.has('tokens') || !m.has('labels')) throw new RangeError(`--tokens: ${o.tokens} needs 'tokens' and 'labels' tensors`);
      tokens = { tokens: m.get('tokens')!, labels: m.get('labels')! };
    } else if (o.tokenizer && o.data) {
      tok = await openTokenizer({ ...o, tokenizer: o.tokenizer });
    } else {
      throw new RangeError('train-ar: give --tokens FILE, or --tokenizer CKPT with --data DIR');
    }
    await runTraining(
      { loss: 'loss', lr: 'lr' },
      ({ signal, onStep }) => trainTransformer(cfg, {
        ...v, batchSize: v.batchSize ?? run.batchSize ?? 32, maxEpochs: v.maxEpochs ?? (v.maxSteps === undefined ? run.maxEpochs : undefined),
        signal, onStep, tokens, tokenizer: tok, data: o.data, imageSize: intFlag(o.imageSize, '--image-size'), valData: o.valData,
        autocast: autocastFor(run, o), clip: run.gradientClipVal,
        onData: (d) => console.error(`ibq: ${d.sequences} token maps${d.cached === undefined ? '' : d.cached ? ' (from the cache)' : ` (${d.encoded} encoded by this process, cached)`}`),
      }),
      (r) => ({ loss: r.lastLoss }),
    );
  });
}

export function register(program: Command): void {
  registerTokenizer(program);
  registerTransformer(program);
}

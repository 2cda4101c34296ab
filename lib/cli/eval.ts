/**
 * `ibq eval-tokenizer` (rFID, LPIPS, PSNR, SSIM, codebook utilization) and `ibq eval-samples` (FID, IS).
 * Weight files are never downloaded: a missing one stops the command with its name and where it is published.
 */
import { writeFileSync } from 'node:fs';

import type { Command } from 'commander';

import { evaluateSamples, evaluateTokenizer, INCEPTION_NOTE } from '../eval/index.js';
import { inceptionWeightsGiven, resolveInceptionWeights } from '../eval/weights.js';
import { loadWeightsFile } from '../io/index.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { lpipsProvenance } from '../tokenizer/trainer_state.js';
import { imageSizeFor } from './open_tokenizer.js';
import { intArg } from './parse.js';


const INCEPTION_FLAG = '--inception-weights FILE';

function progress(label: string) {
  let last = 0;
  return (done: number, total: number | undefined) => {
    const now = Date.now();
    if (!process.stderr.isTTY || now - last < 200) return;
    last = now;
    process.stderr.write(`\r${label}: ${done}${total ? `/${total}` : ''} images`);
  };
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : String(v);
}

export function register(program: Command): void {
  program
    .command('eval-tokenizer')
    .description('rFID, LPIPS, PSNR, SSIM and codebook utilization of a tokenizer on a folder of images')
    .requiredOption('--ckpt <file>', 'tokenizer checkpoint (.ckpt / .pth)')
    .requiredOption('--data <dir|shards>', "validation images (searched recursively), or WebDataset tar shards ('val-{000000..000009}.tar')")
    .option('--config <yaml|preset>', 'tokenizer config YAML or preset (IBQ-1024 ... IBQ-262144); default: inferred')
    .option('--image-size <n>', "images resized (shorter side) and centre-cropped to this size (default: the tokenizer's ddconfig.resolution)", intArg('--image-size'))
    .option('--batch-size <n>', 'images per batch', intArg('--batch-size'), 8)
    .option('--limit <n>', 'evaluate only the first N images', intArg('--limit'))
    .option('--ema', 'use the EMA weights (model_ema.*)')
    .option('--inception-weights <file>', 'pt_inception-2015-12-05-6726825d.pth (default $IBQ_INCEPTION_WEIGHTS)')
    .option('--lpips-weights <dir>', 'folder with vgg16-397923af.pth + vgg.pth and/or alexnet-owt-7be5be79.pth + alex.pth (default $IBQ_LPIPS_WEIGHTS)')
    .option('--json <out>', 'also write the metrics as JSON')
    .action(async (o: { ckpt: string; data: string; config?: string; imageSize?: number; batchSize: number; limit?: number;
      ema?: boolean; inceptionWeights?: string; lpipsWeights?: string; json?: string }) => {
      // weights named but missing fail before any heavy work; not named at all: rFID is skipped
      const inception = inceptionWeightsGiven(o.inceptionWeights)
        ? resolveInceptionWeights(o.inceptionWeights, INCEPTION_FLAG)
        : undefined;
      const ckpt = await loadWeightsFile(o.ckpt);
      const tokenizer = await Tokenizer.fromCheckpoint(ckpt, { config: o.config, ema: !!o.ema });
      const size = imageSizeFor(o.imageSize, tokenizer);
      const m = await evaluateTokenizer({
        tokenizer, data: o.data, imageSize: size.size, batchSize: o.batchSize, limit: o.limit,
        weights: {
          inception, lpips: o.lpipsWeights,
          // LPIPS from the checkpoint's loss.perceptual_loss.* only when they are trained weights
          lpipsStateDict: lpipsProvenance(ckpt.meta).trained ? ckpt.stateDict : undefined,
          optionNames: { inception: INCEPTION_FLAG, lpips: '--lpips-weights DIR' },
        },
        onProgress: progress('eval-tokenizer'),
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      for (const w of m.warnings) process.stderr.write(`warning: ${w}\n`);
      console.log(`images       ${m.numImages}; ${size.line}`);
      console.log(`rFID         ${m.rFID === null ? 'skipped: ' + m.skipped.rFID : fmt(m.rFID)}`);
      if (m.skipped.lpips) console.log(`LPIPS        skipped: ${m.skipped.lpips}`);
      for (const [net, v] of Object.entries(m.lpips)) console.log(`LPIPS (${net})`.padEnd(13) + fmt(v));
      console.log(`PSNR         ${fmt(m.psnr)}`);
      console.log(`SSIM         ${fmt(m.ssim)}`);
      console.log(`utilization  ${(m.utilization * 100).toFixed(2)}% (${m.usedCodes} / ${m.nEmbed} codes)`);
      console.log(INCEPTION_NOTE);
      if (o.json) writeFileSync(o.json, JSON.stringify({ ...m, histogram: Array.from(m.histogram) }, null, 1) + '\n');
      for (const t of ckpt.stateDict.values()) t.dispose();
      tokenizer.dispose();
    });

  program
    .command('eval-samples')
    .description('FID (against reference statistics or images) and Inception Score of generated samples')
    .argument('<samples>', '.npz with uint8 images [N,H,W,3] in arr_0')
    .requiredOption('--ref <npz>', 'reference .npz: mu and sigma, or images in arr_0')
    .option('--inception-weights <file>', 'pt_inception-2015-12-05-6726825d.pth (default $IBQ_INCEPTION_WEIGHTS)')
    .option('--batch-size <n>', 'images per Inception batch', intArg('--batch-size'), 50)
    .option('--json <out>', 'also write the metrics as JSON')
    .action(async (samples: string, o: { ref: string; inceptionWeights?: string; batchSize: number; json?: string }) => {
      const inception = resolveInceptionWeights(o.inceptionWeights, INCEPTION_FLAG);
      let last = 0;
      const m = await evaluateSamples({
        samples, ref: o.ref, batchSize: o.batchSize, weights: { inception },
        onProgress: (d, t) => {
          if (process.stderr.isTTY && Date.now() - last > 200) (last = Date.now()), process.stderr.write(`\rinception: ${d}/${t}`);
        },
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      for (const w of m.warnings) process.stderr.write(`warning: ${w}\n`);
      console.log(`samples  ${m.numSamples}`);
      console.log(`FID      ${fmt(m.fid)} (reference from ${m.refFrom})`);
      console.log(`IS       ${fmt(m.inceptionScore.mean)} +- ${fmt(m.inceptionScore.std)} (${m.inceptionScore.splits} splits)`);
      console.log(INCEPTION_NOTE);
      if (o.json) writeFileSync(o.json, JSON.stringify(m, null, 1) + '\n');
    });
}

/**
 * Tokenizer commands:
 *   ibq reconstruct --ckpt FILE [--config YAML|PRESET] [--ema] [--image-size N] IMAGES... --out DIR
 *     writes <name>.png = original | reconstruction side by side and prints the PSNR of each image;
 *   ibq tokenize --ckpt FILE [--config YAML|PRESET] [--ema] [--image-size N] IMAGES... --out FILE.npy
 *     writes the token indices, int64 [N, S/f, S/f].
 * --image-size defaults to the tokenizer's ddconfig.resolution, as Tokenizer.encodeImages does.
 */
import { constants } from 'node:fs';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import type { Command } from 'commander';

import { IbqError } from '../core/errors.js';
import { encodePng, toHWC } from '../data/images.js';
import { checkWritableTarget } from '../io/files.js';
import { saveNpy } from '../io/index.js';
import { imageQuality } from '../eval/metrics.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { imageSizeFor } from './open_tokenizer.js';

interface Common {
  ckpt: string;
  config?: string;
  ema?: boolean;
  imageSize?: string;
  out: string;
}

/** --image-size as a number; undefined when not given (then the tokenizer's ddconfig.resolution applies). */
function imageSize(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--image-size: expected a positive integer, got ${v}`);
  return n;
}

function withCommon(cmd: Command): Command {
  return cmd
    .requiredOption('--ckpt <file>', 'tokenizer checkpoint (torch.save / Lightning .ckpt, or .safetensors)')
    .option('--config <yaml|preset>', 'official-layout YAML or IBQ-1024 | IBQ-8192 | IBQ-16384 | IBQ-262144 (default: inferred from the weights)')
    .option('--ema', 'use the EMA weights (model_ema.*)')
    .option('--image-size <n>', "shorter side resized to n, then centre-cropped to n x n (default: the tokenizer's ddconfig.resolution)")
    .argument('<images...>', 'image files (JPEG, PNG, WebP, ...)');
}

/**
 * The file each input of `ibq reconstruct` goes to: <out>/<name without extension>.png.
 * @throws IbqError ERR_IBQ_OUTPUT_CLASH naming both inputs when two of them would go to one file
 */
export function reconstructTargets(images: string[], out: string): string[] {
  const seen = new Map<string, string>();
  return images.map((path) => {
    const file = join(out, basename(path, extname(path)) + '.png');
    const key = resolve(file);
    const first = seen.get(key);
    if (first !== undefined) {
      throw new IbqError(
        'ERR_IBQ_OUTPUT_CLASH',
        `${first} and ${path} would both be written to ${file}; nothing was written. Reconstruct them with ` +
          'separate --out folders, or give the files distinct names',
      );
    }
    seen.set(key, path);
    return file;
  });
}

/** Every input is a readable file (checked before anything is loaded or created). */
async function checkReadable(images: string[]): Promise<void> {
  await Promise.all(
    images.map((p) =>
      access(p, constants.R_OK).catch((err: NodeJS.ErrnoException) => {
        throw new Error(`${p}: cannot read the image (${err.code ?? err.message})`);
      }),
    ),
  );
}

async function open(o: Common): Promise<Tokenizer> {
  const tok = await Tokenizer.fromCheckpoint(o.ckpt, { config: o.config, ema: !!o.ema });
  return tok.eval();
}

export function register(program: Command): void {
  withCommon(program.command('reconstruct').description('encode and decode images; write original|reconstruction PNGs, print PSNR'))
    .requiredOption('--out <dir>', 'output folder')
    .action(async (images: string[], o: Common) => {
      const given = imageSize(o.imageSize); // a bad value fails before loading
      const targets = reconstructTargets(images, o.out);
      await checkReadable(images);
      const tok = await open(o);
      const { size, line } = imageSizeFor(given, tok);
      console.log(line);
      let made = false; // the folder is created once the first image has been encoded (inputs and size checked)
      for (const [i, path] of images.entries()) {
        const { indices, images: x } = await tok.encodeImages([path], { imageSize: size });
        const rec = await tok.decode(indices);
        const [a, b] = (await Promise.all([x.data(), rec.data()])) as [Float32Array, Float32Array];
        const [p] = (await imageQuality(x, rec, { range: 'symmetric' })).psnr;
        const left = toHWC(a, 0, size, size), right = toHWC(b, 0, size, size);
        const both = Buffer.alloc(size * 2 * size * 3);
        for (let y = 0; y < size; y++) {
          left.copy(both, y * size * 6, y * size * 3, (y + 1) * size * 3);
          right.copy(both, y * size * 6 + size * 3, y * size * 3, (y + 1) * size * 3);
        }
        const file = targets[i]!;
        if (!made) {
          await mkdir(o.out, { recursive: true });
          made = true;
        }
        await writeFile(file, await encodePng(both, size * 2, size));
        console.log(`${path}\tPSNR ${p!.toFixed(2)} dB\t-> ${file}`);
        for (const t of [indices, x, rec]) t.dispose();
      }
      tok.dispose();
    });

  withCommon(program.command('tokenize').description('write the token indices of images to a .npy file'))
    .requiredOption('--out <file.npy>', 'output .npy (int64 [N, h, w])')
    .action(async (images: string[], o: Common) => {
      const size = imageSize(o.imageSize); // a bad value fails before loading
      await checkWritableTarget(o.out, '--out');
      const tok = await open(o);
      const { indices } = await tok.encodeImages(images, { imageSize: size });
      await saveNpy(o.out, indices);
      console.log(`${images.length} image(s) -> ${o.out} int64 [${indices.shape.join(', ')}]`);
      tok.dispose();
    });
}

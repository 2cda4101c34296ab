/**
 * Tiny models for the generation / AR-training tests: the tokenizer fixture (32 x 32 images, ch_mult [1, 2]
 * so 16 x 16 = 256 tokens, n_embed 128) and a small transformer over its codebook with random weights
 * (the official init zeroes the head, which would make every logit equal).
 */
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import sharp from 'sharp';

import { tensor, Tokenizer, Transformer, type TokenizerConfig } from '../../dist/index.js';
import { fixture } from './fixtures.js';

/** The tokenizer fixture's init_args (case.json). */
export function tokenizerCaseConfig(): TokenizerConfig {
  const c = JSON.parse(readFileSync(fixture('tokenizer', 'case.json'), 'utf8'));
  return {
    ddconfig: c.ddconfig, n_embed: c.n_embed, embed_dim: c.embed_dim, beta: c.beta, use_entropy_loss: c.use_entropy_loss,
    entropy_temperature: c.entropy_temperature, sample_minimization_weight: c.sample_minimization_weight,
    batch_maximization_weight: c.batch_maximization_weight,
  };
}

export const TOKENIZER_CKPT = () => fixture('tokenizer', 'model.ckpt');

export async function fixtureTokenizer(): Promise<Tokenizer> {
  return (await Tokenizer.fromCheckpoint(TOKENIZER_CKPT(), { config: tokenizerCaseConfig() })).eval();
}

export const TINY_AR = {
  vocab_size: 128, block_size: 256, n_layer: 1, n_head: 2, n_embd: 32, class_num: 3, multiple_of: 32,
};

/** Deterministic uniform(-a, a) values (LCG). */
export function pseudoRandom(n: number, seed: number, a: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * a;
  }
  return out;
}

/** TINY_AR with a random head (std ~ 0.5 logits) so samples depend on the class and the seed. */
export async function tinyTransformer(seed = 1): Promise<Transformer> {
  const tr = Transformer.create(TINY_AR, { seed });
  const head = tr.stateDict().get('head.weight')!;
  await tr.loadStateDict(new Map([['head.weight', tensor(pseudoRandom(head.shape[0]! * head.shape[1]!, seed, 3), head.shape)]]), { strict: false });
  return tr.eval();
}

/** Writes `perClass` PNGs (size x size, smooth colour patterns differing by class) into dir/<class>/. */
export async function writeImageFolder(dir: string, classes: string[], perClass: number, size = 32): Promise<void> {
  for (const [ci, c] of classes.entries()) {
    mkdirSync(join(dir, c), { recursive: true });
    for (let k = 0; k < perClass; k++) {
      const px = Buffer.alloc(size * size * 3);
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++)
          for (let ch = 0; ch < 3; ch++) {
            px[(y * size + x) * 3 + ch] = (((ci + 1) * 40 * (ch + 1) + x * (k + 2) * 3 + y * (ch + ci + 1) * 5) % 256) & 255;
          }
      await sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toFile(join(dir, c, `img${k}.png`));
    }
  }
}

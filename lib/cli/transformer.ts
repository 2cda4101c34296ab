/**
 * `ibq sample` (class-conditional generation, mirrors the official IBQ sample script: class-major labels,
 * `--chunk I/N` splits the class list across processes and seeds with seed * N + I as it does), with progress on
 * stderr; SIGINT/SIGTERM stop the sampling (nothing written; exit 130/143). Training: lib/cli/train.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Command } from 'commander';

import { generate, imageGrid, sampleBatches, saveSamplesNpz } from '../transformer/generate.js';
import { saveSafetensors } from '../io/index.js';
import { tensor, type Tensor } from '../core/tensor.js';
import { Transformer } from '../transformer/transformer.js';
import { resolveTransformerConfig, TRANSFORMER_PRESETS } from '../transformer/config.js';
import { progressBar, stopSignals } from './progress.js';
import { openTokenizer } from './open_tokenizer.js';
import { numberArg } from './parse.js';


/**
 * '0,1,2' | 'all' | class names ('coat,sneaker', the checkpoint's class_names; ids and names may be mixed)
 * -> class ids; `--chunk I/N` keeps the I-th of N contiguous parts (0-based).
 */
export function parseClasses(spec: string, classNum: number, chunk?: string, names?: readonly string[]): number[] {
  let ids: number[];
  if (spec === 'all') ids = Array.from({ length: classNum }, (_, i) => i);
  else {
    ids = spec.split(',').map((s) => {
      const t = s.trim();
      const n = Number(t);
      if (t !== '' && Number.isInteger(n) && n >= 0 && n < classNum) return n;
      const byName = names ? names.indexOf(t) : -1;
      if (byName >= 0) return byName;
      if (!names || (t !== '' && Number.isInteger(n))) {
        throw new RangeError(`--classes: class ids must be integers in [0, ${classNum - 1}]${names ? ' or class names' : ''}, got '${s}'`);
      }
      const list = names.length > 12 ? `${names.slice(0, 12).join(', ')}, ... (${names.length})` : names.join(', ');
      throw new RangeError(`--classes: '${t}' is neither a class id in [0, ${classNum - 1}] nor a class name of this checkpoint (${list})`);
    });
  }
  if (chunk === undefined) return ids;
  const { index, count } = parseChunk(chunk);
  const per = Math.ceil(ids.length / count);
  return ids.slice(index * per, (index + 1) * per);
}

export function parseChunk(chunk: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(chunk);
  if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new RangeError(`--chunk: expected I/N with 0 <= I < N, got '${chunk}'`);
  return { index: Number(m[1]), count: Number(m[2]) };
}

function isPreset(v: string): boolean {
  return (TRANSFORMER_PRESETS as readonly string[]).includes(v);
}

/** Largest tokens/images array `ibq sample` keeps in memory (bytes): far below a typed array's limit. */
export const MAX_SAMPLE_BYTES = 2 ** 31;

/**
 * Refuses a sample count whose tokens (int64 [N, L]) or images (uint8 [N, H, W, 3], H*W = L*f^2) would not
 * fit in memory, before anything is allocated: a RangeError naming --per-class and the largest count allowed.
 */
export function checkSampleCount(classes: number, perClass: number, L: number, f?: number): void {
  const perSample = Math.max(L * 8, f === undefined ? 0 : L * f * f * 3);
  const n = classes * perClass;
  if (n * perSample > MAX_SAMPLE_BYTES) {
    const most = Math.max(0, Math.floor(MAX_SAMPLE_BYTES / perSample / classes));
    throw new RangeError(`--per-class: ${perClass} samples for each of ${classes} class(es) (${n} in all) would need ` +
      `${(n * perSample / 2 ** 30).toFixed(1)} GiB in memory (limit ${MAX_SAMPLE_BYTES / 2 ** 30} GiB); use at most ` +
      `${most} per class, or sample in several runs (--classes, --chunk I/N)`);
  }
}

function isAbort(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError';
}

export function register(program: Command): void {
  program
    .command('sample')
    .description('class-conditional sampling with the AR transformer; with --tokenizer also images (PNG grid, --npz)')
    .requiredOption('--ar <ckpt>', 'AR checkpoint (official .ckpt or a train-ar last.ckpt)')
    .option('--tokenizer <ckpt>', 'tokenizer checkpoint to decode the tokens into images')
    .option('--config <yaml|preset>', 'AR config: YAML (official layout) or B, L, XL, XXL (default: from the checkpoint)')
    .option('--tokenizer-config <yaml|preset>', 'tokenizer config (default: the AR YAML first stage, else inferred)')
    .option('--ema', 'use the tokenizer EMA weights (model_ema.*)')
    .option('--classes <list>', "class ids '0,1,2', class names 'coat,sneaker' (those the checkpoint records) or 'all'", 'all')
    .option('--per-class <n>', 'samples per class', numberArg('--per-class'), 1)
    .option('--cfg-scale <x>', 'classifier-free guidance scale (<= 1: none)', numberArg('--cfg-scale'), 1.0)
    .option('--temperature <t>', 'softmax temperature (0: greedy)', numberArg('--temperature'), 1.0)
    .option('--top-k <k>', 'top-k filtering (0: off)', numberArg('--top-k'), 0)
    .option('--top-p <p>', 'nucleus filtering in (0, 1]', numberArg('--top-p'), 1.0)
    .option('--seed <s>', 'torch.manual_seed of the first batch (batch at sample i: seed + i; with --chunk I/N: seed * N + I + i)', numberArg('--seed'), 42)
    .option('--batch-size <n>', 'images per native sampling call', numberArg('--batch-size'), 50)
    .option('--out <dir>', 'output folder', 'samples')
    .option('--npz', 'write samples[_I].npz: arr_0 uint8 [N, H, W, 3] (ADM evaluator layout; needs --tokenizer)')
    .option('--grid-max <n>', 'images in grid[-IofN].png (0: no grid)', numberArg('--grid-max'), 64)
    .option('--chunk <I/N>', 'process the I-th of N parts of the class list (0-based)')
    .option('--device <d>', "'cpu' or 'cuda[:N]'")
    .action(async (o) => {
      if (o.npz && o.tokenizer === undefined) throw new RangeError('--npz: needs --tokenizer to decode the tokens into images');
      if (!Number.isInteger(o.perClass) || o.perClass < 1) throw new RangeError(`--per-class: expected a positive integer, got ${o.perClass}`);
      const tr = await Transformer.fromCheckpoint(o.ar, { config: o.config, device: o.device });
      const tok = o.tokenizer !== undefined ? await openTokenizer(o) : undefined;
      const classes = parseClasses(o.classes, tr.config.class_num, o.chunk, tr.classNames);
      if (classes.length === 0) throw new RangeError(`--chunk: part ${o.chunk} of the class list is empty`);
      checkSampleCount(classes.length, o.perClass, tr.config.block_size, tok?.downsampleFactor);
      const labels = classes.flatMap((c) => Array<number>(o.perClass).fill(c));
      const chunk = o.chunk === undefined ? undefined : parseChunk(o.chunk);
      const seed = chunk ? o.seed * chunk.count + chunk.index : o.seed;
      const suffix = chunk ? `-${chunk.index}of${chunk.count}` : '';
      mkdirSync(o.out, { recursive: true });

      const L = tr.config.block_size;
      const bar = progressBar(labels.length, 'images');
      const sig = stopSignals('stopping the sampling');
      const common = {
        labels, cfgScale: o.cfgScale, temperature: o.temperature, topK: o.topK, topP: o.topP, seed, signal: sig.signal,
        batchSize: o.batchSize, onProgress: (done: number) => bar.update(Math.floor(done / L)),
      };
      let tokens: Tensor;
      let images: Tensor | undefined;
      try {
        if (tok) ({ tokens, images } = await generate({ transformer: tr, tokenizer: tok, ...common }));
        else {
          const flat = new BigInt64Array(labels.length * L);
          for await (const b of sampleBatches(tr, common)) flat.set(b.tokens, b.offset * L);
          tokens = tensor(flat, [labels.length, L]);
        }
      } catch (err) {
        if (!isAbort(err)) throw err;
        bar.stop();
        console.error('ibq: sampling interrupted; nothing written');
        process.exitCode = sig.exitCode ?? 130;
        return;
      } finally {
        sig.dispose();
      }
      bar.update(labels.length);
      bar.stop();
      const written: Record<string, string> = { tokens: join(o.out, `tokens${suffix}.safetensors`) };
      await saveSafetensors(written.tokens!, new Map([['tokens', tokens], ['labels', tensor(BigInt64Array.from(labels, BigInt), [labels.length])]]));
      if (images) {
        const gridMax = Math.max(0, Math.trunc(o.gridMax));
        if (gridMax > 0) {
          const n = Math.min(gridMax, labels.length);
          const [, H, W] = images.shape;
          const head = n === labels.length ? images : tensor((images.dataSync() as Uint8Array).subarray(0, n * H! * W! * 3), [n, H!, W!, 3], { dtype: 'uint8' });
          written.grid = join(o.out, `grid${suffix}.png`);
          // one row per class when they fit (--per-class <= 16), labelled with the class names the checkpoint keeps
          const rows = o.perClass <= 16;
          const names = tr.classNames;
          const rowLabels = rows && names ? classes.slice(0, Math.ceil(n / o.perClass)).map((c) => names[c]!) : undefined;
          writeFileSync(written.grid, await imageGrid(head, { cols: rows ? o.perClass : undefined, rowLabels }));
        }
        if (o.npz) {
          written.npz = join(o.out, chunk ? `samples_${chunk.index}.npz` : 'samples.npz');
          await saveSamplesNpz(written.npz, images);
        }
      }
      console.log(JSON.stringify({ samples: labels.length, classes: classes.length, seed, ...written }));
    });
}

/**
 * The demo's stages, each through the public API only: train the tokenizer (trainTokenizer), judge it on
 * held-out images (imageQuality = the official PSNR/SSIM, CodebookUsage), tokenize (tokensFromTensor), train the
 * AR transformer (trainTransformer), its held-out next-token loss (teacher-forced Transformer.forward, eval mode), and
 * class-conditional sampling with guidance (generate).
 */
import { join } from 'node:path';

import {
  clampAsync, CodebookUsage, generate, imageQuality, tensor, tokensFromTensor, trainTokenizer, trainTransformer,
  type Tensor, type Tokenizer, type Transformer,
} from '../index.js';
import type { LabelledImages } from './data.js';
import type { DemoSettings } from './settings.js';

/** A progress bar as lib/cli/progress.ts draws it; `update` sets the position and extra fields. */
export interface DemoBar {
  update(value: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

/** Where the demo reports: progress bars and lines of text (the CLI draws bars on stderr, prints on stdout). */
export interface DemoUI {
  bar(total: number, unit: string, fields?: string[]): DemoBar;
  log(line: string): void;
}

const imagesTensor = (s: LabelledImages): Tensor => tensor(s.pixels, [s.labels.length, 3, s.size, s.size]);
const onCpu = (t: Tensor): Tensor => (t.device === 'cpu' ? t : t.to('cpu'));

/** LPIPS weight files (torchvision VGG16 + LPIPS v0.1 lin layers); absent: the perceptual loss is off. */
export interface LpipsFiles {
  vgg16: string;
  lin: string;
}

/** Stage 1: trains the tokenizer on the training images (checkpoint and log.jsonl in outDir). */
export async function trainDemoTokenizer(
  train: LabelledImages,
  s: DemoSettings,
  opts: { outDir: string; device?: string; lpips?: LpipsFiles; ui: DemoUI; signal?: AbortSignal },
): Promise<{ tokenizer: Tokenizer; steps: number; log: Record<string, number> }> {
  const cfg = structuredClone(s.tokenizer.config);
  cfg.lossconfig.params.perceptual_weight = opts.lpips ? 1.0 : 0.0;
  const bar = opts.ui.bar(s.tokenizer.steps, 'steps', ['rec', 'disc', 'codes']);
  let last: Record<string, number> = {};
  const data = imagesTensor(train);
  try {
    const r = await trainTokenizer(cfg, {
      data, outDir: opts.outDir, overwrite: true, maxSteps: s.tokenizer.steps, batchSize: s.tokenizer.batchSize, seed: s.seed,
      imageSize: s.imageSize, device: opts.device, signal: opts.signal,
      perceptual: opts.lpips ? { vgg16: opts.lpips.vgg16, lin: opts.lpips.lin } : undefined,
      onStep: (st) => {
        last = st.log;
        const f = (k: string) => (st.log[k] ?? NaN).toFixed(3);
        // exp(batch entropy): the effective number of codes in use
        bar.update(st.step + 1, { rec: f('train/reconstruct_loss'), disc: f('train/disc_loss'), codes: Math.exp(st.log['train/codebook_avg_entropy_loss'] ?? 0).toFixed(0) });
      },
    });
    r.trainer.dispose();
    return { tokenizer: r.tokenizer.eval(), steps: r.globalStep, log: last };
  } finally {
    bar.stop();
    data.dispose();
  }
}

/** Held-out images picked for the reconstruction figure: round-robin over the classes, at most `max`. */
export function figureIndices(labels: number[], max: number): number[] {
  const byClass = new Map<number, number[]>();
  labels.forEach((c, i) => (byClass.get(c) ?? byClass.set(c, []).get(c)!).push(i));
  const queues = [...byClass.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  const out: number[] = [];
  for (let k = 0; out.length < Math.min(max, labels.length); k++) for (const q of queues) if (k < q.length && out.length < max) out.push(q[k]!);
  return out;
}

export interface TokenizerEvaluation {
  psnr: number;
  ssim: number;
  codebook: { used: number; utilization: number };
  /** Originals and reconstructions (float CHW [n, 3, S, S]) of the figure's images. */
  figure: { originals: Float32Array; reconstructions: Float32Array; n: number };
}

/** Stage 2: mean PSNR / SSIM (official evaluation) of the clamped reconstructions, codebook usage over all held-out tokens. */
export async function evaluateDemoTokenizer(tok: Tokenizer, test: LabelledImages, ui: DemoUI, batchSize = 100): Promise<TokenizerEvaluation> {
  const N = test.labels.length, per = 3 * test.size * test.size;
  const usage = new CodebookUsage(tok.config.n_embed);
  const pick = figureIndices(test.labels, 16);
  const originals = new Float32Array(pick.length * per), reconstructions = new Float32Array(pick.length * per);
  let psnr = 0, ssim = 0;
  const bar = ui.bar(N, 'images');
  try {
    for (let i = 0; i < N; i += batchSize) {
      const n = Math.min(batchSize, N - i);
      const x = tensor(test.pixels.subarray(i * per, (i + n) * per), [n, 3, test.size, test.size]);
      const o = await tok.forward(x);
      // metrics on the CPU, next to the originals (the tokenizer may run on another device)
      const xrec = onCpu(o.xrec), indices = onCpu(o.indices);
      const rec = await clampAsync(xrec, -1, 1);
      const q = await imageQuality(x, rec, { range: 'symmetric' });
      psnr += q.psnr.reduce((a, b) => a + b, 0);
      ssim += q.ssim.reduce((a, b) => a + b, 0);
      await usage.add(indices);
      const r = (await rec.data()) as Float32Array;
      pick.forEach((j, k) => {
        if (j >= i && j < i + n) {
          originals.set(test.pixels.subarray(j * per, (j + 1) * per), k * per);
          reconstructions.set(r.subarray((j - i) * per, (j - i + 1) * per), k * per);
        }
      });
      for (const t of new Set([x, rec, xrec, indices, o.h, o.z_q, o.indices, o.xrec, o.quant_loss, o.sample_entropy, o.avg_entropy, o.entropy_loss])) t?.dispose();
      bar.update(i + n);
    }
  } finally {
    bar.stop();
  }
  return {
    psnr: psnr / N, ssim: ssim / N, codebook: { used: usage.used, utilization: usage.utilization },
    figure: { originals, reconstructions, n: pick.length },
  };
}

/** Stage 3a: token maps int64 [N, h * w] and labels int64 [N] of a set of images (tokenizer in eval mode). */
export async function tokenizeImages(tok: Tokenizer, set: LabelledImages): Promise<{ tokens: Tensor; labels: Tensor }> {
  const x = imagesTensor(set);
  try {
    return await tokensFromTensor(tok, x, set.labels, { batchSize: 200 });
  } finally {
    x.dispose();
  }
}

/** Stage 3b: trains the class-conditional transformer on the training tokens (checkpoint and log.jsonl in outDir). */
export async function trainDemoTransformer(
  data: { tokens: Tensor; labels: Tensor },
  s: DemoSettings,
  opts: { vocab: number; classes: number; outDir: string; device?: string; ui: DemoUI; signal?: AbortSignal },
): Promise<{ model: Transformer; steps: number; lastLoss: number }> {
  const t = s.transformer;
  const params = { ...t.config, vocab_size: opts.vocab, block_size: data.tokens.shape[1]!, class_num: opts.classes };
  const bar = opts.ui.bar(t.steps, 'steps', ['loss']);
  try {
    const r = await trainTransformer(
      { transformer_config: { params }, learning_rate: t.learning_rate, weight_decay: t.weight_decay, wp: t.wp },
      {
        tokens: data, outDir: opts.outDir, overwrite: true, maxSteps: t.steps, batchSize: Math.min(t.batchSize, data.tokens.shape[0]!),
        seed: s.seed, device: opts.device, signal: opts.signal, checkpointEvery: t.steps,
        onStep: (l) => bar.update(l.step + 1, { loss: l.log.loss!.toFixed(3) }),
      },
    );
    return { model: r.model.eval(), steps: r.globalStep, lastLoss: r.lastLoss };
  } finally {
    bar.stop();
  }
}

/**
 * Stage 3c: mean next-token cross-entropy (nats per token) on held-out token maps, eval mode: the official
 * training loss (cross-entropy of model(z[:, :-1], c) against z), without label dropout, one native call per
 * batch (Transformer.lossAndGrads with no gradients asked for).
 */
export async function heldOutTokenLoss(model: Transformer, data: { tokens: Tensor; labels: Tensor }, batchSize = 32): Promise<number> {
  const [N, L] = data.tokens.shape as [number, number];
  const tok = (await data.tokens.data()) as BigInt64Array;
  const lab = (await data.labels.data()) as BigInt64Array;
  model.eval();
  let sum = 0;
  for (let i = 0; i < N; i += batchSize) {
    const n = Math.min(batchSize, N - i);
    const tokens = tensor(tok.subarray(i * L, (i + n) * L), [n, L]), labels = tensor(lab.subarray(i, i + n), [n]);
    const r = await model.lossAndGrads(tokens, labels, { wrt: [], labelDropout: false });
    sum += r.loss * n * L;
    tokens.dispose();
    labels.dispose();
  }
  return sum / (N * L);
}

/** Stage 4: `perClass` samples of every class with guidance; uint8 images [classes * perClass, S, S, 3], class-major. */
export async function sampleEveryClass(
  model: Transformer,
  tok: Tokenizer,
  classes: number,
  s: DemoSettings['sampling'],
  opts: { ui: DemoUI; signal?: AbortSignal },
): Promise<{ images: Uint8Array; labels: number[]; size: number }> {
  const labels = Array.from({ length: classes * s.perClass }, (_, i) => Math.floor(i / s.perClass));
  const bar = opts.ui.bar(labels.length * model.config.block_size, 'tokens');
  try {
    const g = await generate({
      transformer: model, tokenizer: tok, labels, cfgScale: s.cfgScale, temperature: s.temperature, topK: s.topK, topP: s.topP,
      seed: s.seed, batchSize: 100, signal: opts.signal, onProgress: (done) => bar.update(done),
    });
    const images = (await g.images.data()) as Uint8Array;
    const size = g.images.shape[1]!;
    g.images.dispose();
    g.tokens.dispose();
    return { images, labels, size };
  } finally {
    bar.stop();
  }
}

export const demoPaths = (out: string) => ({
  tokenizer: join(out, 'tokenizer'),
  transformer: join(out, 'transformer'),
  reconstructions: join(out, 'reconstructions.png'),
  samples: join(out, 'samples.png'),
  metrics: join(out, 'metrics.json'),
});

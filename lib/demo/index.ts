/**
 * runDemo: the whole IBQ pipeline on real images, through the public API. (1) train a small IBQ tokenizer
 * (discriminator and LeCAM on; LPIPS only when its weights are found); (2) held-out PSNR / SSIM / codebook
 * utilization and reconstructions.png; (3) tokenize the training set and train a small class-conditional AR
 * transformer, with its held-out next-token loss; (4) sample every class with guidance -> samples.png;
 * (5) class consistency of the samples by a nearest-class-mean pixel classifier fitted on the real training
 * images; (6) metrics.json with every figure, the settings and the timings.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

import { info, LPIPS_WEIGHTS, LPIPS_WEIGHTS_ENV } from '../index.js';
import { NearestClassMean, uint8ToPixels } from './classify.js';
import { BUNDLED_DATA, loadDemoData } from './data.js';
import { reconstructionFigure, samplesFigure } from './figures.js';
import { checkTargets, summaryLines, type DemoMetrics } from './report.js';
import { defaultSettings, type DemoSettings } from './settings.js';
import {
  demoPaths, evaluateDemoTokenizer, heldOutTokenLoss, sampleEveryClass, tokenizeImages, trainDemoTokenizer,
  trainDemoTransformer, type DemoUI, type LpipsFiles,
} from './steps.js';

export { defaultSettings, type DemoSettings } from './settings.js';
export { BUNDLED_DATA, FASHION_CLASSES, loadDemoData, type DemoData, type LabelledImages } from './data.js';
export { NearestClassMean } from './classify.js';
export { TARGETS, type DemoMetrics } from './report.js';
export type { DemoBar, DemoUI } from './steps.js';

export interface DemoOptions {
  /** IDX folder or class-folder image set (default: the bundled Fashion-MNIST subset). */
  data?: string;
  /** Output folder (default out/demo). */
  out?: string;
  /** Caps the training steps of both stages. */
  maxSteps?: number;
  /** Caps the training images (quick runs). */
  maxImages?: number;
  /** Samples per class (default 10). */
  perClass?: number;
  device?: string;
  /** Folder with the LPIPS files (default $IBQ_LPIPS_WEIGHTS); absent: the perceptual loss is off. */
  lpipsWeights?: string;
  /** Epoch ms when `npm run demo` started (setup + build time = demo start - this). */
  setupStartedAt?: number;
  ui?: DemoUI;
  signal?: AbortSignal;
  settings?: DemoSettings;
}

/** The signal fired (e.g. Ctrl-C): the stage in progress saved its checkpoint and the demo stopped. */
export class DemoInterrupted extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DemoInterrupted';
  }
}

/**
 * Environment variables `npm run demo` sets (package.json): one OpenBLAS thread (libtorch's own threads already
 * use both cores; OpenBLAS's extra threads spun in sched_yield) and glibc malloc keeping freed memory instead of
 * returning it to the system and faulting it in again every step. Recorded in metrics.json.
 */
const TUNING_ENV = ['OPENBLAS_NUM_THREADS', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_'];

/** The CPU's model name, with its family and model on Linux (e.g. 'AMD EPYC (family 26, model 2)'). */
function cpuName(): string {
  const name = cpus()[0]?.model?.trim() || 'unknown';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const field = (k: string) => new RegExp(`^${k}\\s*:\\s*(\\S+)`, 'm').exec(info)?.[1];
    const family = field('cpu family'), model = field('model');
    return family && model ? `${name} (family ${family}, model ${model})` : name;
  } catch {
    return name;
  }
}

const SILENT: DemoUI = { bar: () => ({ update() {}, stop() {} }), log() {} };

function lpipsFiles(dir: string | undefined): LpipsFiles | undefined {
  if (!dir) return undefined;
  const w = LPIPS_WEIGHTS.vgg;
  const vgg16 = join(dir, w.backbone), lin = join(dir, w.lin);
  return existsSync(vgg16) && existsSync(lin) ? { vgg16, lin } : undefined;
}

/** Runs the demo; resolves to the metrics it wrote to <out>/metrics.json. */
export async function runDemo(opts: DemoOptions = {}): Promise<DemoMetrics> {
  const t0 = performance.now();
  const startedAt = Date.now();
  const ui = opts.ui ?? SILENT;
  const out = opts.out ?? join('out', 'demo');
  const paths = demoPaths(out);
  const s = structuredClone(opts.settings ?? defaultSettings());
  if (opts.maxSteps !== undefined) {
    s.tokenizer.steps = Math.min(s.tokenizer.steps, opts.maxSteps);
    s.transformer.steps = Math.min(s.transformer.steps, opts.maxSteps);
  }
  if (opts.perClass !== undefined) s.sampling.perClass = opts.perClass;
  const threads = info().threads;  // the default (the CPUs this process may use) or --threads / setNumThreads
  mkdirSync(out, { recursive: true });
  const stages: Record<string, number> = {};
  let mark = performance.now();
  const stage = (name: string) => {
    const now = performance.now();
    stages[name] = (now - mark) / 1000;
    mark = now;
  };

  const lpipsDir = opts.lpipsWeights ?? process.env[LPIPS_WEIGHTS_ENV];
  const lpips = lpipsFiles(lpipsDir);
  const lpipsNote = lpips
    ? `LPIPS on (VGG16 + lin weights from ${lpipsDir})`
    : `LPIPS off: no ${LPIPS_WEIGHTS.vgg.backbone} + ${LPIPS_WEIGHTS.vgg.lin} found (${lpipsDir ? `in ${lpipsDir}` : `set ${LPIPS_WEIGHTS_ENV} or --lpips-weights DIR`})`;
  const inf = info();
  const device = opts.device ?? 'cpu';
  ui.log(`ibq demo: libtorch ${inf.libtorch}, device ${device}, ${threads} threads; ${lpipsNote}`);

  // data
  const dataDir = opts.data ?? BUNDLED_DATA;
  const data = await loadDemoData(dataDir, { size: s.imageSize, maxImages: opts.maxImages });
  if (data.test.labels.length === 0) throw new RangeError(`--data ${dataDir}: no held-out images (give each class two or more images, or a val/ split)`);
  const K = data.classes.length;
  ui.log(`data: ${data.source.kind} ${data.source.path}: ${data.train.labels.length} training and ${data.test.labels.length} held-out images, ${K} classes, ${s.imageSize}x${s.imageSize}`);
  stage('data');

  // (1) tokenizer
  const nEmbed = s.tokenizer.config.n_embed;
  const f = 2 ** (s.tokenizer.config.ddconfig.ch_mult.length - 1);
  ui.log(`[1/5] training the IBQ tokenizer: n_embed ${nEmbed}, ${s.imageSize / f}x${s.imageSize / f} tokens, discriminator + LeCAM on, ${lpips ? 'LPIPS on' : 'LPIPS off'}; ${s.tokenizer.steps} steps of ${s.tokenizer.batchSize}`);
  const tk = await trainDemoTokenizer(data.train, s, { outDir: paths.tokenizer, device: opts.device, lpips, ui, signal: opts.signal });
  if (opts.signal?.aborted) {
    tk.tokenizer.dispose();
    throw new DemoInterrupted(`interrupted after ${tk.steps} tokenizer steps; its checkpoint: ${join(paths.tokenizer, 'last.ckpt')}`);
  }
  stage('tokenizerTraining');

  // (2) held-out evaluation
  ui.log(`[2/5] evaluating the tokenizer on ${data.test.labels.length} held-out images`);
  const ev = await evaluateDemoTokenizer(tk.tokenizer, data.test, ui);
  writeFileSync(paths.reconstructions, await reconstructionFigure(ev.figure.originals, ev.figure.reconstructions, ev.figure.n, s.imageSize));
  ui.log(`      PSNR ${ev.psnr.toFixed(2)} dB, SSIM ${ev.ssim.toFixed(3)}, codebook ${ev.codebook.used}/${nEmbed} used -> ${paths.reconstructions}`);
  stage('tokenizerEvaluation');

  // (3) tokens and the AR transformer
  ui.log(`[3/5] tokenizing ${data.train.labels.length} + ${data.test.labels.length} images and training the AR transformer (${s.transformer.steps} steps of ${s.transformer.batchSize})`);
  const trainTokens = await tokenizeImages(tk.tokenizer, data.train);
  const testTokens = await tokenizeImages(tk.tokenizer, data.test);
  stage('tokenize');
  const ar = await trainDemoTransformer(trainTokens, s, { vocab: nEmbed, classes: K, outDir: paths.transformer, device: opts.device, ui, signal: opts.signal });
  if (opts.signal?.aborted) {
    tk.tokenizer.dispose();
    ar.model.dispose();
    throw new DemoInterrupted(`interrupted after ${ar.steps} transformer steps; checkpoints: ${join(paths.tokenizer, 'last.ckpt')}, ${join(paths.transformer, 'last.ckpt')}`);
  }
  stage('transformerTraining');
  const heldOutLoss = await heldOutTokenLoss(ar.model, testTokens);
  const bound = 0.8 * Math.log(nEmbed);
  ui.log(`      held-out loss ${heldOutLoss.toFixed(3)} nats/token (0.8 * ln(n_embed) = ${bound.toFixed(3)})`);
  stage('transformerEvaluation');

  // (4) samples
  ui.log(`[4/5] sampling ${s.sampling.perClass} images of each of the ${K} classes (cfg scale ${s.sampling.cfgScale}, temperature ${s.sampling.temperature})`);
  const sm = await sampleEveryClass(ar.model, tk.tokenizer, K, s.sampling, { ui, signal: opts.signal });
  writeFileSync(paths.samples, await samplesFigure(sm.images, data.classes, s.sampling.perClass, sm.size));
  stage('sampling');

  // (5) class consistency
  ui.log('[5/5] class consistency: nearest-class-mean classifier on pixels, fitted on the real training images');
  const judge = new NearestClassMean(data.train, K);
  const real = judge.score(data.test).accuracy;
  const gen = judge.score({ pixels: uint8ToPixels(sm.images, sm.labels.length, sm.size), labels: sm.labels, size: sm.size });
  const perClass = Array.from({ length: K }, (_, c) => {
    const idx = sm.labels.flatMap((l, i) => (l === c ? [i] : []));
    return idx.filter((i) => gen.predictions[i] === c).length / idx.length;
  });
  stage('classConsistency');

  const parts = {
    tokenizer: {
      steps: tk.steps, batchSize: s.tokenizer.batchSize, nEmbed, tokens: [s.imageSize / f, s.imageSize / f] as [number, number],
      psnr: ev.psnr, ssim: ev.ssim, codebookUsed: ev.codebook.used, codebookUtilization: ev.codebook.utilization,
      trainingLoss: Object.fromEntries(Object.entries(tk.log).map(([k, v]) => [k.replace(/^train\//, ''), v])),
    },
    transformer: {
      steps: ar.steps, batchSize: Math.min(s.transformer.batchSize, data.train.labels.length), parameters: ar.model.parameterCount,
      trainLoss: ar.lastLoss, heldOutLoss, heldOutLossBound: bound, heldOutSequences: data.test.labels.length,
    },
    classConsistency: { share: gen.accuracy, chance: 1 / K, perClass, classifierAccuracyOnRealHeldOut: real },
  };
  const run = (performance.now() - t0) / 1000;
  const metrics: DemoMetrics = {
    version: 1,
    createdAt: new Date(startedAt).toISOString(),
    data: {
      source: data.source.path, kind: data.source.kind, classes: data.classes, trainImages: data.train.labels.length,
      heldOutImages: data.test.labels.length, imageSize: s.imageSize,
    },
    environment: {
      libtorch: inf.libtorch, device, threads, cpus: cpus().length, node: process.version, lpips: lpips !== undefined, lpipsNote,
      cpu: cpuName(), tuning: Object.fromEntries(TUNING_ENV.map((k) => [k, process.env[k] ?? null])),
    },
    ...parts,
    sampling: { ...s.sampling, samples: sm.labels.length },
    targets: checkTargets(parts),
    settings: s,
    timings: {
      setupAndBuild: opts.setupStartedAt !== undefined ? Math.max(0, (startedAt - opts.setupStartedAt) / 1000) : null,
      run,
      stages,
    },
    files: {
      reconstructions: paths.reconstructions, samples: paths.samples, metrics: paths.metrics,
      tokenizerCheckpoint: join(paths.tokenizer, 'last.ckpt'), transformerCheckpoint: join(paths.transformer, 'last.ckpt'),
    },
  };
  writeFileSync(paths.metrics, JSON.stringify(metrics, null, 2) + '\n');
  for (const line of summaryLines(metrics)) ui.log(line);
  tk.tokenizer.dispose();
  ar.model.dispose();
  return metrics;
}

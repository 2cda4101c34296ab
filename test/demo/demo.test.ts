// `ibq demo` (what `npm run demo` runs after setup) with a few steps writes
// reconstructions.png, samples.png and a metrics.json of the documented schema; `--data DIR` runs on a tiny
// class-folder image set; the nearest-class-mean judge labels images by their nearest class mean.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

import { NearestClassMean, type DemoMetrics } from '../../dist/demo/index.js';
import { checkTargets, summaryLines } from '../../dist/demo/report.js';
import { heldOutTokenLoss } from '../../dist/demo/steps.js';
import { tensor, Transformer } from '../../dist/index.js';
import { run } from '../support/run.js';

const BIN = resolve(__dirname, '..', '..', 'bin', 'ibq.js');
const ibq = (args: string[], env: Record<string, string | undefined> = {}) =>
  run(process.execPath, [BIN, ...args], { timeout: 120_000, env: { ...process.env, ...env } });

const num = z.number().refine(Number.isFinite, 'finite');
const share = num.min(0).max(1);
const MetricsSchema = z.strictObject({
  version: z.literal(1),
  createdAt: z.iso.datetime(),
  data: z.strictObject({
    source: z.string(), kind: z.enum(['idx', 'image-folder']), classes: z.array(z.string()).min(2),
    trainImages: z.number().int().positive(), heldOutImages: z.number().int().positive(), imageSize: z.number().int().positive(),
  }),
  environment: z.strictObject({
    libtorch: z.string(), device: z.string(), threads: z.number().int().positive(), cpus: z.number().int().positive(),
    node: z.string(), lpips: z.boolean(), lpipsNote: z.string(), cpu: z.string().min(1),
    tuning: z.record(z.string(), z.string().nullable()),
  }),
  tokenizer: z.strictObject({
    steps: z.number().int().positive(), batchSize: z.number().int().positive(), nEmbed: z.number().int().min(256),
    tokens: z.tuple([z.number().int().positive(), z.number().int().positive()]),
    psnr: num, ssim: num.min(-1).max(1), codebookUsed: z.number().int().min(1), codebookUtilization: share,
    trainingLoss: z.record(z.string(), z.number()),
  }),
  transformer: z.strictObject({
    steps: z.number().int().positive(), batchSize: z.number().int().positive(), parameters: z.number().int().positive(),
    trainLoss: num.positive(), heldOutLoss: num.positive(), heldOutLossBound: num.positive(), heldOutSequences: z.number().int().positive(),
  }),
  sampling: z.strictObject({
    perClass: z.number().int().positive(), cfgScale: num, temperature: num, topK: z.number().int().min(0), topP: num,
    seed: z.number().int(), samples: z.number().int().positive(),
  }),
  classConsistency: z.strictObject({
    share, chance: share, perClass: z.array(share), classifierAccuracyOnRealHeldOut: share,
  }),
  targets: z.strictObject({ psnr: z.boolean(), codebookUtilization: z.boolean(), classConsistency: z.boolean(), heldOutLoss: z.boolean() }),
  settings: z.looseObject({
    imageSize: z.number().int(), seed: z.number().int(),
    tokenizer: z.looseObject({ config: z.looseObject({ n_embed: z.number().int(), lossconfig: z.looseObject({ params: z.looseObject({}) }) }), steps: z.number().int(), batchSize: z.number().int() }),
    transformer: z.looseObject({ config: z.looseObject({ n_layer: z.number().int() }), steps: z.number().int(), batchSize: z.number().int() }),
    sampling: z.looseObject({ perClass: z.number().int() }),
  }),
  timings: z.strictObject({
    setupAndBuild: num.min(0).nullable(),
    run: num.positive(),
    stages: z.strictObject({
      data: num.min(0), tokenizerTraining: num.min(0), tokenizerEvaluation: num.min(0), tokenize: num.min(0),
      transformerTraining: num.min(0), transformerEvaluation: num.min(0), sampling: num.min(0), classConsistency: num.min(0),
    }),
  }),
  files: z.strictObject({
    reconstructions: z.string(), samples: z.string(), metrics: z.string(), tokenizerCheckpoint: z.string(), transformerCheckpoint: z.string(),
  }),
});
type Metrics = z.infer<typeof MetricsSchema>;

const SCALE = 2, PAD = 2;

/** Checks the three files of a run in `out` and returns the parsed metrics. */
async function checkRun(out: string, classes: number, perClass: number): Promise<Metrics> {
  const m = MetricsSchema.parse(JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')));
  const S = m.data.imageSize * SCALE;
  const rec = await sharp(join(out, 'reconstructions.png')).metadata();
  const nFig = Math.min(16, m.data.heldOutImages);
  expect(rec.format).toBe('png');
  expect(rec.height).toBe(2 * (S + PAD) + PAD); // originals above reconstructions
  expect(rec.width! - 2 * PAD - nFig * S).toBeGreaterThan(0); // the label column
  const smp = await sharp(join(out, 'samples.png')).metadata();
  expect(smp.format).toBe('png');
  expect(smp.height).toBe(classes * (S + PAD) + PAD); // one row per class
  expect(smp.width! - 2 * PAD - perClass * S).toBeGreaterThan(0);
  // the figures are consistent with each other
  expect(m.data.classes.length).toBe(classes);
  expect(m.sampling.samples).toBe(classes * perClass);
  expect(m.classConsistency.perClass.length).toBe(classes);
  const meanPerClass = m.classConsistency.perClass.reduce((a, b) => a + b, 0) / classes;
  expect(Math.abs(meanPerClass - m.classConsistency.share)).toBeLessThan(1e-12);
  expect(m.classConsistency.chance).toBeCloseTo(1 / classes, 12);
  expect(m.tokenizer.codebookUsed).toBeLessThanOrEqual(m.tokenizer.nEmbed);
  expect(m.tokenizer.codebookUtilization).toBeCloseTo(m.tokenizer.codebookUsed / m.tokenizer.nEmbed, 12);
  expect(m.transformer.heldOutLossBound).toBeCloseTo(0.8 * Math.log(m.tokenizer.nEmbed), 12);
  expect(m.transformer.heldOutSequences).toBe(m.data.heldOutImages);
  expect(m.targets.psnr).toBe(m.tokenizer.psnr >= 20);
  const stageSum = Object.values(m.timings.stages).reduce((a, b) => a + b, 0);
  expect(stageSum).toBeLessThanOrEqual(m.timings.run + 1e-6);
  return m;
}

describe('ibq demo', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-demo-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('runs the whole pipeline on the bundled Fashion-MNIST subset with a few steps and writes the three files', async () => {
    const out = join(root, 'fashion');
    const started = Date.now() - 5000;
    const r = await ibq(['demo', '--max-steps', '3', '--max-images', '200', '--per-class', '2', '--out', out], { IBQ_DEMO_SETUP_START: String(started), OPENBLAS_NUM_THREADS: '1', MALLOC_TRIM_THRESHOLD_: undefined });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/LPIPS (on|off)/);
    expect(r.stdout).toMatch(/PSNR [\d.]+ dB/);
    const m = await checkRun(out, 10, 2);
    expect(m.data.kind).toBe('idx');
    expect(m.data.classes[9]).toBe('Ankle boot');
    expect(m.data.trainImages).toBe(200);
    expect(m.data.heldOutImages).toBe(1000);
    expect(m.tokenizer.steps).toBe(3);
    expect(m.transformer.steps).toBe(3);
    expect(m.tokenizer.tokens).toEqual([16, 16]);
    expect(m.timings.setupAndBuild!).toBeGreaterThanOrEqual(5);
    // the BLAS / allocator settings it ran with are recorded
    expect(m.environment.tuning.OPENBLAS_NUM_THREADS).toBe('1');
    expect(m.environment.tuning.MALLOC_TRIM_THRESHOLD_).toBeNull();
    expect(m.files.tokenizerCheckpoint).toBe(join(out, 'tokenizer', 'last.ckpt'));
    // the nearest-class-mean judge is far above chance on real held-out Fashion-MNIST even fitted on 200 images
    expect(m.classConsistency.classifierAccuracyOnRealHeldOut).toBeGreaterThan(0.4);
    // an untrained-ish AR model: its held-out loss is still about ln(n_embed)
    expect(m.transformer.heldOutLoss).toBeGreaterThan(0.5 * Math.log(m.tokenizer.nEmbed));
  }, 120_000);

  it('--data DIR: a tiny image folder with class sub-folders (every class held out once)', async () => {
    const data = join(root, 'folder');
    const colours: Record<string, [number, number, number]> = { blue: [20, 40, 230], green: [30, 200, 40], red: [230, 30, 20] };
    for (const [name, rgb] of Object.entries(colours)) {
      mkdirSync(join(data, name), { recursive: true });
      for (let i = 0; i < 4; i++) {
        const px = Buffer.alloc(40 * 40 * 3);
        for (let p = 0; p < 40 * 40; p++) for (let c = 0; c < 3; c++) px[p * 3 + c] = Math.max(0, Math.min(255, rgb[c]! + ((p * 7 + i * 13 + c) % 21) - 10));
        await sharp(px, { raw: { width: 40, height: 40, channels: 3 } }).png().toFile(join(data, name, `${i}.png`));
      }
    }
    const out = join(root, 'folder-out');
    const r = await ibq(['demo', '--data', data, '--max-steps', '2', '--per-class', '3', '--out', out], { IBQ_DEMO_SETUP_START: '' });
    expect(r.status, r.stderr).toBe(0);
    const m = await checkRun(out, 3, 3);
    expect(m.data.kind).toBe('image-folder');
    expect(m.data.classes).toEqual(['blue', 'green', 'red']);
    expect(m.data.trainImages).toBe(9);
    expect(m.data.heldOutImages).toBe(3);
    expect(m.timings.setupAndBuild).toBeNull();
    // three well separated colours: the judge gets every real held-out image right
    expect(m.classConsistency.classifierAccuracyOnRealHeldOut).toBe(1);
  }, 120_000);

  it('Ctrl-C during tokenizer training saves its checkpoint, stops the demo and exits with 130', async () => {
    const out = join(root, 'sigint');
    const child = spawn(process.execPath, [BIN, 'demo', '--max-steps', '500', '--max-images', '200', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', sent = false;
    child.stdout.on('data', (d) => {
      stdout += d;
      // interrupt (once: a second Ctrl-C kills) when the first steps have run
      if (stdout.includes('[1/5]') && !sent) {
        sent = true;
        setTimeout(() => child.kill('SIGINT'), 1500);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/interrupted after \d+ tokenizer steps; its checkpoint: .*last\.ckpt/);
    expect(existsSync(join(out, 'tokenizer', 'last.ckpt'))).toBe(true);
    expect(existsSync(join(out, 'metrics.json'))).toBe(false);
  }, 120_000);

  it('--data DIR that is missing or has no class sub-folders: a clear error, no crash', async () => {
    const flat = join(root, 'flat');
    mkdirSync(flat, { recursive: true });
    await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).png().toFile(join(flat, 'a.png'));
    const r1 = await ibq(['demo', '--data', flat, '--out', join(root, 'x')]);
    expect(r1.status).toBe(1);
    expect(r1.stderr).toMatch(/--data .*flat: expected class sub-folders \(at least two classes\), found flat images/);
    const r2 = await ibq(['demo', '--data', join(root, 'missing'), '--out', join(root, 'x')]);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/--data .*missing: no such folder/);
  });
});

describe('the demo summary', () => {
  // the reference run's metrics.json as a template; the figures are set below
  const template = JSON.parse(readFileSync(resolve(__dirname, '..', '..', 'docs', 'demo', 'metrics.json'), 'utf8')) as DemoMetrics;
  const lines = (f: { psnr: number; util: number; loss: number; share: number }) => {
    const m = structuredClone(template);
    m.tokenizer.psnr = f.psnr;
    m.tokenizer.codebookUtilization = f.util;
    m.transformer.heldOutLoss = f.loss;
    m.classConsistency.share = f.share;
    m.targets = checkTargets(m);
    return summaryLines(m).join('\n');
  };
  it('says "above the bound" for a held-out loss above its bound and "below target" for figures below theirs', () => {
    const bound = template.transformer.heldOutLossBound;
    const bad = lines({ psnr: 19.5, util: 0.3, loss: bound + 0.1, share: 0.2 });
    expect(bad).toMatch(new RegExp(`held-out loss ${(bound + 0.1).toFixed(3)} nats/token \\(bound 0\\.8 \\* ln\\(\\d+\\) = [\\d.]+: above the bound\\)`));
    expect(bad).not.toMatch(/loss[^\n]*below target/);
    expect(bad).toMatch(/PSNR 19\.50 dB \(target >= 20: below target\)/);
    expect(bad).toMatch(/= 30\.0% \(target >= 50\.0%: below target\)/);
    expect(bad).toMatch(/target >= 40\.0%: below target/);
    const good = lines({ psnr: 21, util: 0.7, loss: bound - 0.1, share: 0.6 });
    expect(good).toMatch(/: ok\), training loss/);
    expect(good).not.toMatch(/below target|above the bound/);
  });
});

describe('NearestClassMean', () => {
  it('labels an image with the class of the nearest mean image, ignoring classes without images', () => {
    const size = 2, per = 3 * size * size;
    // class 0 around -0.5, class 2 around +0.5, class 1 empty
    const px = new Float32Array(4 * per);
    [-0.6, -0.4, 0.4, 0.6].forEach((v, i) => px.fill(v, i * per, (i + 1) * per));
    const j = new NearestClassMean({ pixels: px, labels: [0, 0, 2, 2], size }, 3);
    expect(j.means[1]).toBeUndefined();
    expect(Array.from(j.means[0]!)).toEqual(new Array(per).fill(Math.fround(-0.6) / 2 + Math.fround(-0.4) / 2));
    expect(j.predict(new Float32Array(per).fill(-0.1))).toBe(0);
    expect(j.predict(new Float32Array(per).fill(0.1))).toBe(2);
    const s = j.score({ pixels: new Float32Array([...new Array(per).fill(0.9), ...new Array(per).fill(0.9)]), labels: [2, 0], size });
    expect(s.predictions).toEqual([2, 2]);
    expect(s.accuracy).toBe(0.5);
  });
});

describe('heldOutTokenLoss', () => {
  it('equals the official training loss (Transformer.lossAndGrads, eval mode) on the same token maps', async () => {
    const model = Transformer.create({ vocab_size: 32, block_size: 16, n_layer: 2, n_head: 2, n_embd: 32, class_num: 3, multiple_of: 32 }, { seed: 4 });
    // a non-zero head so the logits are not uniform (the official init zeroes it)
    const sd = model.stateDict();
    const head = sd.get('head.weight')!;
    await model.loadStateDict(new Map([['head.weight', tensor(Float32Array.from({ length: head.shape[0]! * head.shape[1]! }, (_, i) => Math.sin(i) * 0.3), head.shape)]]), { strict: false });
    const N = 7, L = 16;
    const toks = tensor(BigInt64Array.from({ length: N * L }, (_, i) => BigInt((i * 13 + (i >> 4)) % 32)), [N, L]);
    const labels = tensor(BigInt64Array.from({ length: N }, (_, i) => BigInt(i % 3)), [N]);
    const ours = await heldOutTokenLoss(model, { tokens: toks, labels }, 3); // uneven batches
    model.eval();
    // with a gradient asked for: the loss of the graph the training step builds
    const ref = await model.lossAndGrads(toks, labels, { wrt: ['head.weight'], labelDropout: false });
    expect(Math.abs(ours - ref.loss)).toBeLessThan(1e-5);
    expect(ours).toBeGreaterThan(0);
    model.dispose();
  });
});

// The official tokenizer YAML (configs/IBQ/gpu/imagenet_ibqgan_16384.yaml, its model shrunk) run as Lightning runs
// it: validation at every epoch end (and a sanity pass), TensorBoard event files that an independent reader
// (Python's protobuf, test/support/tb_reader.py) accepts, ModelCheckpoint's top-k by the monitored value and
// last.ckpt, the learning rate of each optimizer in the log, and a resume from the YAML's ckpt_path.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';

import { loadCheckpoint, trainTokenizer, type TrainTokenizerResult } from '../../dist/index.js';
import { ibq } from '../distributed/support.js';
import { run } from '../support/run.js';

const ROOT = join(__dirname, '..', '..');
const PY = '/usr/bin/python3';
const HAVE_PROTOBUF = (await run(PY, ['-c', 'import google.protobuf'])).status === 0;

/** 2 classes x n PNGs of 16 x 16 under dir/<class>/. */
async function images(dir: string, n: number, salt: number): Promise<void> {
  for (const [ci, c] of ['a', 'b'].entries()) {
    mkdirSync(join(dir, c), { recursive: true });
    for (let k = 0; k < n; k++) {
      const px = Buffer.alloc(16 * 16 * 3);
      for (let i = 0; i < px.length; i++) px[i] = (i * (k + 3 + salt) * (ci ? 13 : 7) + ci * 50) % 256;
      await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(join(dir, c, `i${k}.png`));
    }
  }
}

type Line = Record<string, number>;
const lines = (f: string): Line[] => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

interface TbRead {
  file_version: string;
  scalars: Record<string, [number, number][]>;
  images: Record<string, [number, number, number, boolean][]>;
  hparams: Record<string, number | string | boolean>;
  plugins: string[];
  files: number;
}
async function readTb(dir: string): Promise<TbRead> {
  const r = await run(PY, [join(ROOT, 'test/support/tb_reader.py'), dir]);
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

describe.skipIf(!HAVE_PROTOBUF)('a research run from the official YAML', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-research-'));
  const data = join(root, 'data');
  let r: TrainTokenizerResult;
  const warnings: string[] = [];

  /** The official YAML with the model shrunk and the run's folders in `root`; `edit` changes more. */
  function yaml(name: string, edit: (y: any) => void = () => undefined): string {
    const y = parse(readFileSync(join(ROOT, 'configs/IBQ/gpu/imagenet_ibqgan_16384.yaml'), 'utf8'));
    const a = y.model.init_args;
    a.ddconfig = { ...a.ddconfig, z_channels: 32, resolution: 16, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [8] };
    Object.assign(a, { n_embed: 64, embed_dim: 8 });
    Object.assign(a.lossconfig.params, { perceptual_weight: 0, disc_ndf: 8, disc_num_layers: 2 });
    y.trainer.max_epochs = 3;
    y.trainer.num_sanity_val_steps = 1;
    const ck = y.trainer.callbacks[0].init_args;
    Object.assign(ck, { dirpath: join(root, `${name}-ckpts`), save_top_k: 2, monitor: 'val/rec_loss', mode: 'min' });
    y.trainer.logger.init_args.save_dir = join(root, `${name}-tb`);
    y.data.init_args.train.params.config.size = 16;
    y.data.init_args.validation.params.config.size = 16;
    edit(y);
    const file = join(root, `${name}.yaml`);
    writeFileSync(file, stringify(y));
    return file;
  }

  beforeAll(async () => {
    await images(join(data, 'train'), 6, 0); // 12 images, batch 4: 3 steps an epoch
    await images(join(data, 'val'), 3, 1); // 6 validation images
    r = await trainTokenizer(yaml('a'), { data, outDir: join(root, 'a'), onWarning: (m) => warnings.push(m) });
  }, 300_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('validates at every epoch end on the val/ split, with the official metrics, logged in log.jsonl', () => {
    expect(r.globalStep).toBe(9);
    expect(r.validations.map((v) => v.step)).toEqual([2, 5, 8]);
    const log = lines(join(root, 'a', 'log.jsonl'));
    const val = log.filter((l) => 'val/psnr' in l);
    expect(val.map((l) => l.step)).toEqual([2, 5, 8]);
    for (const [k, l] of val.entries()) {
      expect(l).toEqual({ step: k * 3 + 2, epoch: k, ...r.validations[k]!.values });
      expect(l['val/images']).toBe(6);
      expect(l['val/psnr']).toBeGreaterThan(5);
      expect(l['val/ssim']).toBeGreaterThan(-1);
      expect(l['val/codebook_utilization']).toBeCloseTo(l['val/used_codes']! / 64, 12);
      expect(l['val/rec_loss']).toBeGreaterThan(0);
    }
    // LearningRateMonitor: the generator's and the discriminator's Adam
    const train = log.filter((l) => 'train/total_loss' in l);
    expect(train).toHaveLength(9);
    for (const l of train) {
      expect(l['lr-Adam']).toBe(l.lr);
      expect(l['lr-Adam-1']).toBeGreaterThan(0);
    }
  });

  it('names once, on the warning, the fields it does not apply', () => {
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/trainer\.accelerator/);
    expect(warnings[0]).toMatch(/trainer\.devices 8 \/ trainer\.num_nodes 8/);
    expect(warnings[0]).not.toMatch(/trainer\.check_val_every_n_epoch|ModelCheckpoint|trainer\.logger/);
  });

  it('keeps the top 2 checkpoints by val/rec_loss and last.ckpt, as ModelCheckpoint does', async () => {
    const dir = join(root, 'a-ckpts');
    const val = r.validations.map((v, k) => ({ file: `epoch=${k}-step=${(k + 1) * 3}.ckpt`, loss: v.values['val/rec_loss']! }));
    const best = [...val].sort((x, y) => x.loss - y.loss).slice(0, 2).map((x) => x.file).sort();
    expect(readdirSync(dir).sort()).toEqual([...best, 'last.ckpt'].sort());
    const last = await loadCheckpoint(join(dir, 'last.ckpt'));
    expect(Number(last.meta.global_step)).toBe(9);
    const cb = (last.meta.callbacks as Record<string, any>)[
      "ModelCheckpoint{'monitor': 'val/rec_loss', 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, 'train_time_interval': None}"];
    expect(cb.best_model_score).toBe(Math.min(...val.map((v) => v.loss)));
    expect(Object.keys(cb.best_k_models).map((p: string) => p.slice(dir.length + 1)).sort()).toEqual(best);
    for (const c of [last, await loadCheckpoint(join(dir, best[0]!))]) {
      for (const k of ['pytorch-lightning_version', 'loops', 'callbacks', 'lr_schedulers', 'optimizer_states', 'state_dict'] as const) {
        expect(k === 'state_dict' ? c.stateDict.size > 0 : k in c.meta).toBe(true);
      }
    }
  });

  it('writes TensorBoard files in Lightning\'s layout that an independent reader accepts', async () => {
    expect(r.logDir).toBe(join(root, 'a-tb', 'run')); // name '' and version 'run'
    expect(existsSync(join(r.logDir!, 'hparams.yaml'))).toBe(true);
    const tb = await readTb(r.logDir!);
    expect(tb.file_version).toBe('brain.Event:2');
    const log = lines(join(root, 'a', 'log.jsonl'));
    // log_every_n_steps 100: step 0 and every epoch's last step; every value of log.jsonl at those steps
    const logged = log.filter((l) => 'train/total_loss' in l && [0, 2, 5, 8].includes(l.step!));
    for (const l of logged) {
      for (const tag of ['train/total_loss', 'train/reconstruct_loss', 'lr-Adam', 'lr-Adam-1', 'lr', 'samples_per_s', 'step_time']) {
        const hit = tb.scalars[tag]!.find(([s]) => s === l.step);
        expect(hit, `${tag} at ${l.step}`).toBeDefined();
        expect(hit![1]).toBeCloseTo(Math.fround(l[tag]!), 6);
      }
    }
    expect(tb.scalars['train/total_loss']!.map(([s]) => s)).toEqual([0, 2, 5, 8]);
    for (const v of r.validations) {
      for (const [tag, value] of Object.entries(v.values)) {
        expect(tb.scalars[tag]!.find(([s]) => s === v.step)![1]).toBeCloseTo(Math.fround(value), 5);
      }
    }
    // reconstructions of the first 8 validation images (originals above): 6 tiles of 32 px at scale 2 and padding
    expect(tb.images['val/reconstructions']!.map(([s]) => s)).toEqual([2, 5, 8]);
    for (const [, w, h, png] of tb.images['val/reconstructions']!) expect([w > 6 * 32, h > 2 * 32, png]).toEqual([true, true, true]);
    expect(tb.hparams['config/model/init_args/n_embed']).toBe(64);
    expect(tb.hparams.batch_size).toBe(4);
    expect(tb.plugins).toContain('hparams');
  });

  it('resumes from the YAML\'s ckpt_path and continues as the uninterrupted run', async () => {
    const from = join(root, 'a-ckpts', 'epoch=0-step=3.ckpt');
    // the first epoch's checkpoint may have fallen out of the top 2: take it from a one-epoch run then
    const start = existsSync(from) ? from : (await trainTokenizer(yaml('b0', (y) => { y.trainer.max_epochs = 1; }), { data, outDir: join(root, 'b0') }), join(root, 'b0-ckpts', 'epoch=0-step=3.ckpt'));
    const b = await trainTokenizer(yaml('b', (y) => { y.ckpt_path = start; }), { data, outDir: join(root, 'b') });
    expect(b.globalStep).toBe(9);
    const x = lines(join(root, 'a', 'log.jsonl')).filter((l) => l.step! >= 3);
    const y = lines(join(root, 'b', 'log.jsonl'));
    expect(y.map((l) => l.step)).toEqual(x.map((l) => l.step));
    for (const [i, l] of y.entries()) {
      for (const k of ['train/total_loss', 'val/rec_loss', 'val/psnr', 'val/ssim']) if (k in l) expect(l[k]).toBe(x[i]![k]);
    }
  }, 300_000);

  it('the CLI takes --logger tensorboard, --val-data and --val-every and prints the warning once', async () => {
    const out = join(root, 'cli');
    const cfg = yaml('cli', (y) => {
      delete y.trainer.logger;
      y.trainer.max_epochs = 1;
    });
    const res = await ibq(['train-tokenizer', '--config', cfg, '--data', join(data, 'train'), '--val-data', join(data, 'val'), '--val-every', '2',
      '--logger', 'tensorboard', '--out', out, '--num-sanity-val-steps', '0']);
    expect(res.stderr.match(/ibq: not applied from the YAML/g)).toHaveLength(1);
    expect(res.code, res.stderr).toBe(0);
    const val = lines(join(out, 'log.jsonl')).filter((l) => 'val/psnr' in l);
    expect(val.map((l) => l.step)).toEqual([1]); // after global_step 2 (3 steps in all)
    const tb = await readTb(join(out, 'lightning_logs', 'version_0'));
    expect(tb.scalars['val/psnr']!.map(([s]) => s)).toEqual([1]);
  }, 120_000);
});

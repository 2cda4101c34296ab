// Tokenizer training data pipeline and CLI: image folder layouts, the official preprocessing, seeded orders, unreadable files
// skipped and counted, `ibq train-tokenizer` (progress, checkpoints, SIGINT saves and exits with 130), and a
// non-finite loss stopping the run with the step named.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decodeImage, epochOrder, listImages, loadCheckpoint, makeDataset, trainTokenizer } from '../../dist/index.js';
import { fashionImages } from '../support/fashion.js';
import { run } from '../support/run.js';

const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
const PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'camera.png', 'brick.png', 'grass.png'];
const HAVE_PHOTOS = PHOTOS.every((p) => existsSync(join(SKIMAGE, p)));
const BIN = join(__dirname, '..', '..', 'bin', 'ibq.js');

const YAML = `
trainer:
  max_epochs: 2
model:
  class_path: src.IBQ.models.ibqgan.IBQ
  init_args:
    ddconfig: {double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0}
    lossconfig:
      target: src.IBQ.modules.losses.vqperceptual.VQLPIPSWithDiscriminator
      params: {disc_start: 0, disc_weight: 0.4, quant_loss_weight: 1.0, entropy_loss_weight: 0.05, gen_loss_weight: 0.1, lecam_loss_weight: 0.05, perceptual_weight: 0.0}
    n_embed: 64
    embed_dim: 16
    learning_rate: 1.0e-4
    use_entropy_loss: true
    use_ema: true
data:
  init_args:
    batch_size: 2
    train: {params: {config: {size: 32}}}
`;

describe.skipIf(!HAVE_PHOTOS)('tokenizer training data and CLI', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-train-data-'));
  const imagenet = join(root, 'imagenet');
  beforeAll(() => {
    PHOTOS.forEach((p, i) => {
      const dir = join(imagenet, 'train', i < 3 ? 'n01440764' : 'n01443537');
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(SKIMAGE, p), join(dir, p.replace('.png', '.PNG')));
    });
    writeFileSync(join(imagenet, 'train', 'n01443537', 'broken.JPEG'), 'not an image at all');
    mkdirSync(join(imagenet, 'val', 'n01440764'), { recursive: true });
    copyFileSync(join(SKIMAGE, 'chelsea.png'), join(imagenet, 'val', 'n01440764', 'v.png'));
    writeFileSync(join(root, 'config.yaml'), YAML);
    writeFileSync(join(root, 'list.txt'), `# a filelist\n${join(SKIMAGE, 'coffee.png')}\nimagenet/train/n01440764/chelsea.PNG\n`);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('lists the ImageNet layout, class folders, flat folders and filelists', () => {
    const a = listImages(imagenet, 'train');
    expect(a.layout).toBe('imagenet');
    expect(a.classes).toEqual(['n01440764', 'n01443537']);
    expect(a.paths.length).toBe(7);
    expect(a.labels.filter((l) => l === 1).length).toBe(4);
    expect(listImages(imagenet, 'val').paths.length).toBe(1);
    expect(listImages(join(imagenet, 'train')).layout).toBe('class-folders');
    expect(listImages(join(imagenet, 'train', 'n01440764')).layout).toBe('flat');
    const f = listImages(join(root, 'list.txt'));
    expect(f.layout).toBe('filelist');
    expect(f.paths[1]).toBe(join(root, 'imagenet/train/n01440764/chelsea.PNG'));
    expect(() => listImages(join(root, 'nope'))).toThrow(/no such file/);
  });

  it('decodes with the official preprocessing: shorter side to size, centre or random crop, [-1, 1]', async () => {
    const c = await decodeImage(join(SKIMAGE, 'chelsea.png'), 32, 'centre'); // 451x300 -> 48x32
    expect(c.length).toBe(3 * 32 * 32);
    expect(Math.min(...c)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...c)).toBeLessThanOrEqual(1);
    const left = await decodeImage(join(SKIMAGE, 'chelsea.png'), 32, { fx: 0, fy: 0 });
    const right = await decodeImage(join(SKIMAGE, 'chelsea.png'), 32, { fx: 0.999, fy: 0 });
    expect(left).not.toEqual(right);
    const grey = await decodeImage(join(SKIMAGE, 'camera.png'), 32, 'centre');
    expect(grey.subarray(0, 1024)).toEqual(grey.subarray(1024, 2048)); // greyscale expanded to RGB
  });

  it('shuffles by seed + epoch and counts unreadable files (replaced by the next readable one)', async () => {
    expect(epochOrder(10, 1, 0)).toEqual(epochOrder(10, 1, 0));
    expect(epochOrder(10, 1, 0)).not.toEqual(epochOrder(10, 1, 1));
    expect([...epochOrder(10, 1, 3)].sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    const ds = makeDataset(imagenet, { size: 32, train: true, seed: 0 });
    const broken = listImages(imagenet).paths.findIndex((p) => p.endsWith('broken.JPEG'));
    const x = await ds.load([broken, 0], 0);
    expect(x.shape).toEqual([2, 3, 32, 32]);
    expect(ds.skipped).toBe(1);
  });

  it('takes in-memory images: a Tensor or { length, batch(indices) }, checking what batch() returns', async () => {
    const images = await fashionImages('t10k', 6);
    const all = images.dataSync() as Float32Array;
    const per = 3 * 32 * 32;
    const { tensor } = await import('../../dist/index.js');
    const src = { length: 6, batch: (idx: number[]) => tensor(Float32Array.from(idx.flatMap((i) => [...all.subarray(i * per, (i + 1) * per)])), [idx.length, 3, 32, 32]) };
    const a = await makeDataset(src, { size: 32, train: true, seed: 0 }).load([4, 1], 0);
    const b = await makeDataset(images, { size: 32, train: true, seed: 0 }).load([4, 1], 0);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    expect(Array.from(b.dataSync().subarray(0, per))).toEqual(Array.from(all.subarray(4 * per, 5 * per)));
    const bad = makeDataset({ length: 6, batch: () => images }, { size: 32, train: true, seed: 0 });
    await expect(bad.load([0, 1], 0)).rejects.toThrow(/expected a Tensor \[2, 3, H, W\]/);
    expect(() => makeDataset(42 as never, { size: 32, train: true, seed: 0 })).toThrow(TypeError);
  });

  it('ibq train-tokenizer trains from a YAML, writes checkpoints and log.jsonl', async () => {
    const out = join(root, 'run');
    const r = await run(process.execPath, [BIN, 'train-tokenizer', '--config', join(root, 'config.yaml'), '--data', imagenet,
      '--out', out, '--max-steps', '4', '--checkpoint-every', '2']);
    expect(JSON.parse(r.stdout)).toMatchObject({ globalStep: 4, stopped: 'done', checkpoint: join(out, 'last.ckpt') });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).skipped).toBe(1);
    for (const f of ['last.ckpt', 'step=00000002.ckpt', 'step=00000004.ckpt']) expect(existsSync(join(out, f)), f).toBe(true);
    const lines = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.step)).toEqual([0, 1, 2, 3]);
    expect(lines[0]).toHaveProperty('train/total_loss');
    expect(lines[0]).toHaveProperty('samples_per_s');
    expect(lines[0]).toHaveProperty('step_time');
  });

  it('--autocast float16 on the CPU is a clear error (CPU autocast is bfloat16 only)', async () => {
    const r = await run(process.execPath, [BIN, 'train-tokenizer', '--config', join(root, 'config.yaml'), '--data', imagenet,
      '--out', join(root, 'f16'), '--max-steps', '1', '--autocast', 'float16']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--autocast: float16 autocast needs a CUDA device; .*use --autocast bfloat16/);
    expect(existsSync(join(root, 'f16', 'last.ckpt'))).toBe(false);
  });

  it('SIGINT saves last.ckpt and exits with 130 (as train-ar)', async () => {
    const out = join(root, 'sigint');
    const child = spawn(process.execPath, [BIN, 'train-tokenizer', '--config', join(root, 'config.yaml'), '--data', imagenet,
      '--out', out, '--max-steps', '100000', '--checkpoint-every', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    const log = join(out, 'log.jsonl');
    for (let i = 0; i < 600 && !(existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 3); i++) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(text).toMatch(/stopped at step \d+; checkpoint .*last\.ckpt/);
    expect(code).toBe(130);
    const ck = await loadCheckpoint(join(out, 'last.ckpt'));
    const steps = readFileSync(log, 'utf8').trim().split('\n').length;
    expect(ck.meta.global_step).toBe(steps);
  }, 120_000);

  it('a non-finite loss stops the run naming the step and the last good checkpoint', async () => {
    const data = await fashionImages('train', 8);
    const cfg = (await import('yaml')).parse(YAML).model.init_args;
    cfg.learning_rate = 1e30; // the generator weights explode after the first update
    cfg.lossconfig.params.disc_start = 1000;
    await expect(trainTokenizer(cfg, { data, outDir: join(root, 'nan'), maxSteps: 50, batchSize: 4, checkpointEvery: 1 }))
      .rejects.toThrow(/non-finite (generator|discriminator) loss at global step \d+; stopped\. .*Last good checkpoint: .*last\.ckpt/);
  }, 120_000);
});

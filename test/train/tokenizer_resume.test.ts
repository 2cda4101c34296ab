// An interrupted run resumes exactly (20 steps == 10 + resume + 10 on CPU, with
// EMA, LeCAM EMA, optimizer and scheduler state taken from the checkpoint), and the trainer's checkpoint loads in
// Python's torch.load with the official key names.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, Tensor, trainTokenizer, type Checkpoint } from '../../dist/index.js';
import { maxAbsDiff } from '../support/compare.js';
import { fashionImages } from '../support/fashion.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';
import { run } from '../support/run.js';

// the fixture's architecture (so the checkpoint keys can be compared with the official model.ckpt) with a cosine
// schedule with warm-up, gradient clipping, EMA and LeCAM
const CONFIG = {
  ddconfig: {
    double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [16], dropout: 0.0,
  },
  n_embed: 128, embed_dim: 16, use_entropy_loss: true, learning_rate: 2e-4, use_ema: true,
  scheduler_type: 'linear-warmup_cosine-decay', warmup_epochs: 1, min_learning_rate: 1e-5, gradient_clip_val: 1.0,
  lr_drop_epoch: [2], lr_drop_rate: 0.5,
  lossconfig: {
    params: {
      disc_start: 3, disc_weight: 0.4, quant_loss_weight: 1.0, entropy_loss_weight: 0.05, gen_loss_weight: null,
      lecam_loss_weight: 0.05, perceptual_weight: 0.0,
    },
  },
};

const PY = '/usr/bin/python3';
const python = (code: string, ...args: string[]) => run(PY, ['-c', code, ...args]);
const HAVE_TORCH = (await python('import torch')).status === 0;

function logLines(dir: string): Record<string, number>[] {
  return readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

describe('tokenizer training: checkpoints and resume', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-train-resume-'));
  const straight = join(root, 'straight'), split = join(root, 'split');
  let data: Tensor;
  let a: Checkpoint, b: Checkpoint;
  // 24 images, batch 4: 6 steps per epoch, so 20 steps cross three epoch ends (LR drop after epoch index 1)
  const run = (outDir: string, maxSteps: number, resume?: string) =>
    trainTokenizer(CONFIG, { data, outDir, maxSteps, maxEpochs: 4, batchSize: 4, seed: 7, resume, checkpointEvery: 5 });
  beforeAll(async () => {
    data = await fashionImages('train', 24, 100);
    await run(straight, 20);
    await run(split, 10);
    await run(split, 20, join(split, 'last.ckpt'));
    a = await loadCheckpoint(join(straight, 'last.ckpt'));
    b = await loadCheckpoint(join(split, 'last.ckpt'));
  }, 300_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('20 steps straight == 10 steps + resume + 10 steps (every logged loss within 1e-6)', () => {
    const x = logLines(straight), y = logLines(split);
    expect(x.map((l) => l.step)).toEqual([...Array(20).keys()]);
    expect(y.map((l) => l.step)).toEqual([...Array(20).keys()]);
    let worst = 0;
    for (let s = 0; s < 20; s++) {
      for (const k of Object.keys(x[s]!).filter((k) => k.startsWith('train/') || k === 'lr')) {
        const d = Math.abs(x[s]![k]! - y[s]![k]!);
        worst = Math.max(worst, d);
        expect(d, `step ${s} ${k}`).toBeLessThanOrEqual(1e-6);
      }
    }
    // the run really trains: losses change, the LR warms up, decays and drops
    expect(x[19]!['train/total_loss']).not.toBe(x[0]!['train/total_loss']);
    expect(x[0]!.lr).toBeLessThan(x[5]!.lr);
    expect(x[19]!['train/disc_factor']).toBe(1);
    expect(x[0]!['train/disc_factor']).toBe(0);
    console.log(`resume: max |straight - resumed| over 20 steps of logs: ${worst}`);
  });

  it('ends in the same state: weights, EMA (model_ema.*), optimizers, LeCAM EMA, scheduler', () => {
    expect([...b.stateDict.keys()]).toEqual([...a.stateDict.keys()]);
    let worst = 0;
    for (const [k, t] of a.stateDict) worst = Math.max(worst, maxAbsDiff(t, b.stateDict.get(k)!));
    expect(worst).toBeLessThanOrEqual(1e-6);
    const ema = a.stateDict.get('model_ema.encoderconv_inweight')!;
    expect(maxAbsDiff(ema, a.stateDict.get('encoder.conv_in.weight')!)).toBeGreaterThan(0);
    expect(Number(a.stateDict.get('model_ema.num_updates')!.dataSync()[0])).toBe(-1);
    const lecam = (c: Checkpoint) => c.meta.lecam_ema as Record<string, number>;
    expect(lecam(a).logits_real_ema).not.toBe(0);
    expect(Math.abs(lecam(a).logits_real_ema! - lecam(b).logits_real_ema!)).toBeLessThanOrEqual(1e-9);
    expect(Math.abs(lecam(a).logits_fake_ema! - lecam(b).logits_fake_ema!)).toBeLessThanOrEqual(1e-9);
    expect(a.meta.global_step).toBe(20);
    expect(b.meta.global_step).toBe(20);
    const sched = (c: Checkpoint) => (c.meta.lr_schedulers as { last_epoch: number }[])[0]!.last_epoch;
    expect(sched(a)).toBe(20);
    expect(sched(b)).toBe(20);
  });

  it.skipIf(!HAVE_TORCH)('the checkpoint loads in Python torch.load with the official keys and state shapes', async () => {
    const code = `
import sys, json, torch
ck = torch.load(sys.argv[1], map_location='cpu')
sd = ck['state_dict']
gen = [v for k, v in sd.items() if not k.startswith(('loss.', 'model_ema.')) and v.dtype.is_floating_point and not k.endswith(('running_mean', 'running_var'))]
dis = [v for k, v in sd.items() if k.startswith('loss.discriminator.') and k.endswith(('weight', 'bias'))]
ok = []
for params, st in ((gen, ck['optimizer_states'][0]), (dis, ck['optimizer_states'][1])):
    opt = torch.optim.Adam([torch.nn.Parameter(p.clone()) for p in params], lr=1.0, betas=(0.5, 0.9))
    opt.load_state_dict(st)
    ok.append(len(opt.state))
print(json.dumps({'keys': list(sd.keys()), 'top': sorted(ck.keys()), 'epoch': ck['epoch'], 'global_step': ck['global_step'],
  'opt_states': ok, 'betas': list(ck['optimizer_states'][0]['param_groups'][0]['betas']),
  'sched': [s['last_epoch'] for s in ck['lr_schedulers']], 'rng': list(ck['rng_state'].shape), 'lecam': ck['lecam_ema'],
  'decay': float(sd['model_ema.decay']), 'num_updates': int(sd['model_ema.num_updates']), 'num_updates_dtype': str(sd['model_ema.num_updates'].dtype)}))
`;
    const r = await python(code, join(straight, 'last.ckpt'));
    expect(r.stderr).toBe('');
    const o = JSON.parse(r.stdout);
    for (const k of [
      'encoder.conv_in.weight', 'decoder.conv_out.weight', 'quantize.embedding.weight', 'loss.discriminator.main.0.weight',
      'loss.discriminator.main.3.running_mean',
      'model_ema.decay', 'model_ema.num_updates', 'model_ema.encoderconv_inweight', 'model_ema.lossdiscriminatormain0weight',
    ]) expect(o.keys, k).toContain(k);
    // perceptual_weight 0 without LPIPS weights: the untrained LPIPS network is not stored, and the checkpoint says so
    expect(o.keys.filter((k: string) => k.startsWith('loss.perceptual_loss.'))).toEqual([]);
    expect(o.top).toEqual(expect.arrayContaining(['state_dict', 'epoch', 'global_step', 'optimizer_states', 'lr_schedulers', 'loops', 'lecam_ema', 'rng_state', 'lpips_weights']));
    expect(o.global_step).toBe(20);
    expect(o.epoch).toBe(3);
    expect(o.opt_states[0]).toBeGreaterThan(0);
    expect(o.opt_states[1]).toBeGreaterThan(0);
    expect(o.betas).toEqual([0.5, 0.9]);
    expect(o.sched).toEqual([20, 20]);
    expect(o.rng).toEqual([5056]);
    expect(Math.abs(o.decay - 0.999)).toBeLessThan(1e-7);
    expect(o.num_updates).toBe(-1);
    expect(o.num_updates_dtype).toBe('torch.int32');
    if (HAVE_FIXTURES) {
      const official = await python(`import sys, json, torch; print(json.dumps(list(torch.load(sys.argv[1], map_location='cpu')['state_dict'].keys())))`,
        fixture('tokenizer', 'model.ckpt'));
      expect(o.keys).toEqual(JSON.parse(official.stdout).filter((k: string) => !k.startsWith('loss.perceptual_loss.')));
    }
  });
});

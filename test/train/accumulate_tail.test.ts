// Gradient accumulation at the end of an epoch, one process. When the samples left for an epoch's last update
// fill fewer than accumulateGradBatches micro-batches of batchSize, that update trains them: micro-batches of
// batchSize (the last one smaller), each micro-batch's mean loss divided by accumulateGradBatches whatever their
// number and size, as Lightning's automatic optimisation weighs them. Checked: the tokenizer CLI on 9 images
// (batch 4 x 2) trains both epochs' tails and a resume from just before a tail ends bit-identical; the weighting
// of a tail in the tokenizer trainer (its optimizer's first moment) and, end to end, in trainTransformer (the
// logged gradient norm of the tail update against the gradient of its samples' loss at the weights it started
// from); the transformer's drop_last only leaves out an incomplete micro-batch.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  epochOrder, loadCheckpoint, tensor, Tokenizer, TokenizerTrainer, trainTransformer, Transformer, type Tensor,
} from '../../dist/index.js';
import { maxAbsDiff } from '../support/compare.js';
import { fashionImages } from '../support/fashion.js';
import { run } from '../support/run.js';

const BIN = join(__dirname, '..', '..', 'bin', 'ibq.js');
const DD = { double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 };
const LOSS = { disc_start: 0, disc_weight: 0.4, quant_loss_weight: 1.0, entropy_loss_weight: 0.05, gen_loss_weight: 0.1, lecam_loss_weight: 0.05, perceptual_weight: 0.0, disc_num_layers: 2, disc_ndf: 8 };
const YAML = `
model:
  class_path: src.IBQ.models.ibqgan.IBQ
  init_args:
    ddconfig: ${JSON.stringify(DD)}
    lossconfig: {params: ${JSON.stringify(LOSS)}}
    n_embed: 64
    embed_dim: 16
    learning_rate: 1.0e-3
    use_entropy_loss: true
    use_ema: true
`;
const AR = {
  vocab_size: 32, block_size: 16, n_layer: 1, n_head: 2, n_embd: 32, class_num: 3, multiple_of: 32,
  resid_dropout_p: 0, ffn_dropout_p: 0, attn_dropout_p: 0, token_drop: 0, drop_path_rate: 0, class_dropout_prob: 0,
};

const readLog = (out: string) => readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);

/** Largest |a - b| over the tensors of `a` whose keys pass `keep` (at least one; every key must be in b). */
function worstDiff(a: Map<string, Tensor>, b: Map<string, Tensor>, keep: (k: string) => boolean): number {
  let worst = 0, n = 0;
  for (const [k, v] of a) {
    if (!keep(k)) continue;
    expect(b.has(k), k).toBe(true);
    worst = Math.max(worst, maxAbsDiff(v, b.get(k)!));
    n++;
  }
  expect(n).toBeGreaterThan(0);
  return worst;
}

describe('accumulation: the epoch tail, one process', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-acc-tail-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  describe('ibq train-tokenizer on 9 images, --batch-size 4 --accumulate-grad-batches 2', () => {
    const data = join(root, 'images');
    const yaml = join(root, 'tok.yaml');
    const train = (out: string, epochs: number, extra: string[] = []) => run(process.execPath, [BIN, 'train-tokenizer', '--config', yaml,
      '--data', data, '--out', out, '--batch-size', '4', '--accumulate-grad-batches', '2', '--max-epochs', String(epochs), '--seed', '3',
      '--checkpoint-every', '1', ...extra], { timeout: 240_000, env: { ...process.env, OMP_NUM_THREADS: '1' } });
    beforeAll(async () => {
      mkdirSync(data);
      writeFileSync(yaml, YAML);
      const x = (await fashionImages('train', 9)).dataSync() as Float32Array;
      const per = 3 * 32 * 32;
      for (let i = 0; i < 9; i++) {
        const px = Buffer.alloc(32 * 32 * 3);
        for (let p = 0; p < 32 * 32; p++) for (let c = 0; c < 3; c++) px[p * 3 + c] = Math.round((x[i * per + c * 32 * 32 + p]! + 1) * 127.5);
        await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(join(data, `img${i}.png`));
      }
    }, 60_000);

    it('trains each epoch\'s tail (2 updates per epoch), and a resume from before a tail ends bit-identical', async () => {
      const full = join(root, 'full');
      const r = await train(full, 2);
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      const log = readLog(full);
      expect(log.map((l) => l.step)).toEqual([0, 1, 2, 3]);
      expect(log.map((l) => l.epoch)).toEqual([0, 0, 1, 1]);
      expect((await loadCheckpoint(join(full, 'last.ckpt'))).meta.global_step).toBe(4);
      // resume from the checkpoint after step 0 (the first tail is next) and from the end of epoch 0
      for (const from of ['step=00000001.ckpt', 'step=00000002.ckpt']) {
        const out = join(root, `resumed-${from}`);
        const again = await train(out, 2, ['--resume', join(full, from)]);
        expect(again.status, again.stderr.slice(-2000)).toBe(0);
        const [a, b] = await Promise.all([loadCheckpoint(join(full, 'last.ckpt')), loadCheckpoint(join(out, 'last.ckpt'))]);
        expect(worstDiff(a.stateDict, b.stateDict, () => true), from).toBe(0);
        const tail = readLog(out).at(-1)!;
        expect(tail['train/total_loss']).toBe(log.at(-1)!['train/total_loss']);
      }
    }, 300_000);
  });

  it('TokenizerTrainer: a tail micro-batch counts 1/accumulate (Lightning), not 1/(micro-batches it has)', async () => {
    const x = await fashionImages('train', 9, 100);
    const all = x.dataSync() as Float32Array;
    const per = 3 * 32 * 32;
    const rows = (start: number, n: number) => tensor(all.slice(start * per, (start + n) * per), [n, 3, 32, 32]);
    const cfg = { ddconfig: DD, n_embed: 64, embed_dim: 16, use_entropy_loss: true };
    // two trainers in the same state after one full update of 2 x 4 images
    const make = async () => {
      const t = TokenizerTrainer.create(Tokenizer.create(cfg, { seed: 5 }), LOSS, { seed: 5, learningRate: 1e-3 });
      await t.step(rows(0, 8), { accumulate: 2, microBatch: 4 });
      return t;
    };
    const [a, b] = [await make(), await make()];
    const firstMoment = async (t: TokenizerTrainer) => {
      const ck = await t.toCheckpoint({ epoch: 0, globalStep: 0 });
      const disc = (ck.meta.optimizer_states as { state: Map<number, { exp_avg: Tensor }>; param_groups: { betas: number[] }[] }[])[1]!;
      return { m: Array.from(disc.state.get(0)!.exp_avg.dataSync() as Float32Array), beta1: disc.param_groups[0]!.betas[0]! };
    };
    const before = await firstMoment(a);
    expect(before.m).toEqual((await firstMoment(b)).m);
    // the epoch's last image: one micro-batch where accumulate asks for 2; and the same image as a plain update
    await a.step(rows(8, 1), { accumulate: 2, microBatch: 4 });
    await b.step(rows(8, 1));
    const [ma, mb] = [(await firstMoment(a)).m, (await firstMoment(b)).m];
    // m' = beta1 m + (1 - beta1) g: the gradient g each update saw, the tail's half the plain one's
    const g = (m: number[]) => m.map((v, i) => (v - before.beta1 * before.m[i]!) / (1 - before.beta1));
    const [ga, gb] = [g(ma), g(mb)];
    const scale = Math.max(...gb.map(Math.abs));
    expect(scale).toBeGreaterThan(0);
    for (let i = 0; i < ga.length; i++) expect(Math.abs(ga[i]! - gb[i]! / 2), `element ${i}`).toBeLessThanOrEqual(1e-5 * scale);
    for (const t of [a, b]) {
      t.tokenizer.dispose();
      t.dispose();
    }
    x.dispose();
  }, 120_000);

  it('trainTransformer: the tail update\'s gradient is half its samples\' mean-loss gradient (13 sequences, batch 4 x 2)', async () => {
    const N = 13, B = 4, seed = 11;
    let s = 99;
    const tok = BigInt64Array.from({ length: N * AR.block_size }, () => BigInt((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % AR.vocab_size));
    const lab = BigInt64Array.from({ length: N }, (_, i) => BigInt(i % AR.class_num));
    const tokens = { tokens: tensor(tok, [N, AR.block_size]), labels: tensor(lab, [N]) };
    const common = { tokens, batchSize: B, accumulateGradBatches: 2, seed, checkpointEvery: 1, distributed: false as const };
    const out = join(root, 'ar');
    const r = await trainTransformer({ transformer_config: { params: AR }, learning_rate: 1e-3 }, { ...common, outDir: out, maxEpochs: 2 });
    // drop_last leaves out the 13th sequence (an incomplete micro-batch), not the 4 after the first 8
    const log = readLog(out);
    expect(log.map((l) => l.step)).toEqual([0, 1, 2, 3]);
    expect(log.map((l) => l.epoch)).toEqual([0, 0, 1, 1]);
    // the tail of epoch 0 (step 1): sequences order[8..11] of that epoch, at the weights after step 0
    const at = await Transformer.fromCheckpoint(join(out, 'step=00000001.ckpt'));
    const rows = epochOrder(N, seed, 0).slice(8, 12);
    const pick = (data: BigInt64Array, width: number) => BigInt64Array.from(rows.flatMap((i) => [...data.subarray(i * width, (i + 1) * width)]));
    const wrt = at.parameterNames();
    const { grads } = await at.train().lossAndGrads(tensor(pick(tok, AR.block_size), [4, AR.block_size]), tensor(pick(lab, 1), [4]), { wrt });
    let sq = 0;
    for (const g of grads.values()) for (const v of g.dataSync() as Float32Array) sq += v * v;
    const expected = Math.sqrt(sq) / 2;
    expect(Math.abs(log[1]!.grad_norm! - expected) / expected).toBeLessThanOrEqual(1e-5);
    at.dispose();
    // resuming just before the tail ends with the same weights
    const resumed = await trainTransformer({ transformer_config: { params: AR }, learning_rate: 1e-3 },
      { ...common, outDir: join(root, 'ar-resumed'), maxEpochs: 2, resume: join(out, 'step=00000001.ckpt') });
    expect(worstDiff(r.model.stateDict(), resumed.model.stateDict(), () => true)).toBe(0);
    r.model.dispose();
    resumed.model.dispose();
  }, 240_000);
});

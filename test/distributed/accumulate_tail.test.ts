// Gradient accumulation at the end of an epoch on 2 ranks (CPU, Gloo on loopback). Every rank holds as many
// samples (DistributedSampler), so every rank's last update has the same micro-batches; each micro-batch's loss
// is divided by accumulate_grad_batches (Lightning) and the gradients averaged over the ranks. Checked: the
// tokenizer trainer's tail on 2 ranks equals, from the same state, one process accumulating the ranks' micro-
// batches (only the tail: Adam turns the rounding of sums taken in another order into steps of the learning
// rate where a gradient is near 0); `ibq launch
// ... train-tokenizer` on 18 images (9 a rank, batch 4 x 2: a tail of 1 image a rank) and `... train-ar` on 26
// sequences (13 a rank: a tail of one full micro-batch, the 13th left out by drop_last) train every epoch's tail,
// train-ar's tail update with the gradient Lightning's weighting gives, and a resume from before a tail ends
// bit-identical.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';

import { epochOrder, loadCheckpoint, loadSafetensors, saveNpy, saveSafetensors, tensor, Transformer, type Tensor } from '../../dist/index.js';
import { maxAbsDiff } from '../support/compare.js';
import { fashionImages } from '../support/fashion.js';
import { freePort, ibq, runRanks, type Run } from './support.js';

const WORKER = join(__dirname, 'workers', 'tokenizer_tail_rank.mjs');
const DD = { double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 };
const LOSS = { disc_start: 0, disc_weight: 0.4, quant_loss_weight: 1.0, entropy_loss_weight: 0.05, lecam_loss_weight: 0, perceptual_weight: 0.0, disc_num_layers: 2, disc_ndf: 8 };
const AR = {
  vocab_size: 32, block_size: 16, n_layer: 1, n_head: 2, n_embd: 32, class_num: 3, multiple_of: 32,
  resid_dropout_p: 0, ffn_dropout_p: 0, attn_dropout_p: 0, token_drop: 0, drop_path_rate: 0, class_dropout_prob: 0,
};
// BatchNorm running statistics differ by construction (rank 0's are broadcast); everything else must agree
const SKIP = /running_mean|running_var|num_batches_tracked/;

const ok = (r: Run, what: string) => expect(r.code, `${what}: ${r.stderr.slice(-3000)}`).toBe(0);
const readLog = (out: string) => readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);

function worstDiff(a: Map<string, Tensor>, b: Map<string, Tensor>): number {
  let worst = 0, n = 0;
  for (const [k, v] of a) {
    if (SKIP.test(k)) continue;
    worst = Math.max(worst, maxAbsDiff(v, b.get(k)!));
    n++;
  }
  expect(n).toBeGreaterThan(10);
  return worst;
}

async function launch(args: string[]): Promise<Run> {
  return ibq(['launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', ...args], { timeoutMs: 240_000 });
}

describe('accumulation: the epoch tail on 2 ranks', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-ddp-tail-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('TokenizerTrainer: the tail of 1 micro-batch on each of 2 ranks == 1 process accumulating both (1e-5)', async () => {
    const images = join(root, 'six.npy');
    await saveNpy(images, await fashionImages('train', 6, 500));
    const job = { images, out: root, config: { ddconfig: DD, n_embed: 64, embed_dim: 16, use_entropy_loss: true, learning_rate: 1e-3, lossconfig: LOSS }, seed: 3 };
    for (const [r, x] of (await runRanks(WORKER, { ...job, mode: 'ddp' }, 2)).entries()) ok(x, `rank ${r}`);
    ok((await runRanks(WORKER, { ...job, mode: 'single' }, 1, { WORLD_SIZE: '1' }))[0]!, 'one process');
    const [single, rank0, rank1] = await Promise.all(['single', 'rank0', 'rank1'].map((n) => loadSafetensors(join(root, `${n}.safetensors`))));
    const worst = worstDiff(single, rank0);
    expect(worst).toBeLessThanOrEqual(1e-5);
    expect(worstDiff(rank0, rank1)).toBe(0);
    console.log(`tokenizer tail, 2 ranks vs accumulation in one process: max |diff| ${worst}`);
  }, 300_000);

  describe('ibq launch --nproc-per-node 2', () => {
    const yaml = join(root, 'tok.yaml');
    const arYaml = join(root, 'ar.yaml');
    const data = join(root, 'images');
    const tokens = join(root, 'tokens.safetensors');
    const N = 26, seed = 5;
    let tok: BigInt64Array, lab: BigInt64Array;
    beforeAll(async () => {
      writeFileSync(yaml, stringify({ model: { init_args: { ddconfig: DD, lossconfig: { params: LOSS }, n_embed: 64, embed_dim: 16, learning_rate: 1e-3, use_entropy_loss: true, use_ema: true } } }));
      writeFileSync(arYaml, stringify({ model: { init_args: { learning_rate: 1e-3, transformer_config: { params: AR } } } }));
      mkdirSync(data);
      const x = (await fashionImages('train', 18, 200)).dataSync() as Float32Array;
      const per = 3 * 32 * 32;
      for (let i = 0; i < 18; i++) {
        const px = Buffer.alloc(32 * 32 * 3);
        for (let p = 0; p < 32 * 32; p++) for (let c = 0; c < 3; c++) px[p * 3 + c] = Math.round((x[i * per + c * 32 * 32 + p]! + 1) * 127.5);
        await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(join(data, `img${String(i).padStart(2, '0')}.png`));
      }
      let s = 7;
      tok = BigInt64Array.from({ length: N * AR.block_size }, () => BigInt((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % AR.vocab_size));
      lab = BigInt64Array.from({ length: N }, (_, i) => BigInt(i % AR.class_num));
      await saveSafetensors(tokens, new Map([['tokens', tensor(tok, [N, AR.block_size])], ['labels', tensor(lab, [N])]]));
    }, 60_000);

    it('train-tokenizer, 18 images, batch 4 x 2: 2 updates an epoch, the tail trained; resume before a tail is exact', async () => {
      const common = (out: string) => ['train-tokenizer', '--config', yaml, '--data', data, '--out', out, '--batch-size', '4',
        '--accumulate-grad-batches', '2', '--max-epochs', '2', '--seed', String(seed), '--checkpoint-every', '1'];
      const full = join(root, 'tok-full');
      ok(await launch(common(full)), 'launch');
      const log = readLog(full);
      expect(log.map((l) => l.step)).toEqual([0, 1, 2, 3]);
      expect(log.map((l) => l.epoch)).toEqual([0, 0, 1, 1]);
      const out = join(root, 'tok-resumed');
      ok(await launch([...common(out), '--resume', join(full, 'step=00000001.ckpt')]), 'resumed launch');
      const [a, b] = await Promise.all([loadCheckpoint(join(full, 'last.ckpt')), loadCheckpoint(join(out, 'last.ckpt'))]);
      expect(a.meta.global_step).toBe(4);
      expect(worstDiff(a.stateDict, b.stateDict)).toBe(0);
    }, 300_000);

    it('train-ar, 26 sequences, batch 4 x 2: the tail update has half the gradient of its 8 sequences\' mean loss; resume is exact', async () => {
      const common = (out: string) => ['train-ar', '--config', arYaml, '--tokens', tokens, '--out', out, '--batch-size', '4',
        '--accumulate-grad-batches', '2', '--max-epochs', '2', '--seed', String(seed), '--checkpoint-every', '1'];
      const full = join(root, 'ar-full');
      ok(await launch(common(full)), 'launch');
      const log = readLog(full);
      expect(log.map((l) => l.step)).toEqual([0, 1, 2, 3]);
      expect(log.map((l) => l.epoch)).toEqual([0, 0, 1, 1]);
      // epoch 0's tail: samples 8..11 of each rank's shard (rank r: positions r, r + 2, ... of the epoch's order),
      // at the weights after step 0; the ranks average their (mean loss / 2) gradients
      const order = epochOrder(N, seed, 0);
      const rows = [0, 1].flatMap((r) => [8, 9, 10, 11].map((i) => order[r + 2 * i]!));
      const pick = (d: BigInt64Array, w: number) => BigInt64Array.from(rows.flatMap((i) => [...d.subarray(i * w, (i + 1) * w)]));
      const at = (await Transformer.fromCheckpoint(join(full, 'step=00000001.ckpt'))).train();
      const { grads } = await at.lossAndGrads(tensor(pick(tok, AR.block_size), [8, AR.block_size]), tensor(pick(lab, 1), [8]), { wrt: at.parameterNames() });
      let sq = 0;
      for (const g of grads.values()) for (const v of g.dataSync() as Float32Array) sq += v * v;
      const expected = Math.sqrt(sq) / 2;
      expect(Math.abs(log[1]!.grad_norm! - expected) / expected).toBeLessThanOrEqual(1e-5);
      at.dispose();
      const out = join(root, 'ar-resumed');
      ok(await launch([...common(out), '--resume', join(full, 'step=00000001.ckpt')]), 'resumed launch');
      const [a, b] = await Promise.all([loadCheckpoint(join(full, 'last.ckpt')), loadCheckpoint(join(out, 'last.ckpt'))]);
      expect(worstDiff(a.stateDict, b.stateDict)).toBe(0);
    }, 300_000);
  });
});

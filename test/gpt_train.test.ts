// AR training: the loss falls on learnable synthetic token data; resume reproduces an uninterrupted run;
// abort saves a checkpoint; the official lr / weight-decay annealing.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { lrWdAnnealing, tensor, trainTransformer, Transformer } from '../dist/index.js';

// class c's sequences: an arithmetic progression mod vocab with a per-sample random start, so the next token
// is determined by the class and the previous token (learnable) while the first one is random.
function syntheticTokens(n: number, L: number, vocab: number, classes: number, seed = 1) {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const tok = new BigInt64Array(n * L);
  const lab = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    let t = Math.floor(rand() * vocab);
    for (let j = 0; j < L; j++) {
      tok[i * L + j] = BigInt(t);
      t = (t + c + 1) % vocab;
    }
    lab[i] = BigInt(c);
  }
  return { tokens: tensor(tok, [n, L]), labels: tensor(lab, [n]) };
}

const MODEL = {
  vocab_size: 16, block_size: 16, n_layer: 2, n_head: 2, n_embd: 32, class_num: 4, multiple_of: 32,
  ffn_dropout_p: 0, token_drop: 0, class_dropout_prob: 0,
};

describe('trainTransformer', () => {
  it('the next-token loss falls well below ln(vocab) and the log has one line per step', async () => {
    const out = mkdtempSync(join(tmpdir(), 'ibq-ar-'));
    const steps: number[] = [];
    const r = await trainTransformer(
      { transformer_config: { params: MODEL }, learning_rate: 3e-3, weight_decay: 0.01 },
      { tokens: syntheticTokens(256, 16, 16, 4), outDir: out, maxSteps: 120, batchSize: 32, seed: 3, onStep: (l) => steps.push(l.loss) },
    );
    expect(r.steps).toBe(120);
    const lines = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBe(120);
    expect(lines[0].step).toBe(1);
    // only the first token (1 of 16) is unpredictable: optimum ~ ln(16)/16 = 0.17
    const last = steps.slice(-10).reduce((a, b) => a + b, 0) / 10;
    expect(steps[0]).toBeGreaterThan(0.9 * Math.log(16));
    expect(last).toBeLessThan(0.35 * Math.log(16));
    // the trained model predicts the progression: greedy samples follow t -> t + c + 1
    const s = (await r.model.sample({ labels: [0, 3], greedy: true })).dataSync() as BigInt64Array;
    let ok = 0;
    for (let j = 1; j < 16; j++) ok += Number(s[j]) === (Number(s[j - 1]) + 1) % 16 ? 1 : 0;
    for (let j = 17; j < 32; j++) ok += Number(s[j]) === (Number(s[j - 1]) + 4) % 16 ? 1 : 0;
    expect(ok).toBeGreaterThanOrEqual(27);
  });

  it('resume continues the optimizer and data order exactly; abort saves a checkpoint', async () => {
    const data = syntheticTokens(64, 16, 16, 4);
    const cfg = { transformer_config: { params: MODEL }, learning_rate: 1e-3 };
    const a = mkdtempSync(join(tmpdir(), 'ibq-ar-a-'));
    const full = await trainTransformer(cfg, { tokens: data, outDir: a, maxSteps: 12, batchSize: 16, seed: 5 });

    const b = mkdtempSync(join(tmpdir(), 'ibq-ar-b-'));
    const ac = new AbortController();
    const first = await trainTransformer(cfg, {
      tokens: data, outDir: b, maxSteps: 12, batchSize: 16, seed: 5, signal: ac.signal,
      onStep: (l) => l.step === 5 && ac.abort(),
    });
    expect(first.aborted).toBe(true);
    expect(first.steps).toBe(5);
    const second = await trainTransformer(cfg, { tokens: data, outDir: b, maxSteps: 12, batchSize: 16, seed: 5, resume: true });
    expect(second.steps).toBe(12);
    expect(second.lastLoss).toBe(full.lastLoss);
    const wa = full.model.stateDict().get('head.weight')!.dataSync() as Float32Array;
    const wb = second.model.stateDict().get('head.weight')!.dataSync() as Float32Array;
    expect(Array.from(wb)).toEqual(Array.from(wa));
    // the checkpoint is an AR checkpoint: fromCheckpoint reads weights and config from it
    const re = await Transformer.fromCheckpoint(join(b, 'last.safetensors'));
    expect(Array.from(re.stateDict().get('head.weight')!.dataSync() as Float32Array)).toEqual(Array.from(wa));
  });

  it('official lr_wd_annealing: warmup from wp0, 5% flat, linear decay to wpe; cosine weight decay', () => {
    const o = { peakLr: 1e-3, wd: 0.05, wdEnd: 0.01, warmupIters: 10, maxIters: 111, wp0: 0.005, wpe: 0.01 };
    expect(lrWdAnnealing(0, o).lr).toBeCloseTo(0.005e-3, 12);
    expect(lrWdAnnealing(5, o).lr).toBeCloseTo((0.005 + 0.995 * 0.5) * 1e-3, 12);
    expect(lrWdAnnealing(10, o).lr).toBeCloseTo(1e-3, 12);
    expect(lrWdAnnealing(14, o).lr).toBeCloseTo(1e-3, 12); // pasd = 0.04 < 0.05
    expect(lrWdAnnealing(110, o).lr).toBeCloseTo(0.01e-3, 12);
    expect(lrWdAnnealing(60, o).lr).toBeCloseTo((0.01 + (0.99 * 0.5) / 0.95) * 1e-3, 12);
    expect(lrWdAnnealing(0, o).wd).toBeCloseTo(0.05, 12);
    expect(lrWdAnnealing(55, o).wd).toBeCloseTo(0.03, 12);
    expect(lrWdAnnealing(110, o).wd).toBeCloseTo(0.01, 12);
    expect(lrWdAnnealing(50, { ...o, wdEnd: 0 }).wd).toBeCloseTo(0.05, 12); // twde 0 -> wd
  });
});

// AR training: the loss falls on learnable synthetic token data; resume reproduces an uninterrupted run;
// abort saves a checkpoint; Lightning-shaped checkpoints torch reads; divergence; the official lr / weight-decay annealing.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { loadCheckpoint, lrWdAnnealing, saveCheckpoint, tensor, trainTransformer, Transformer } from '../../dist/index.js';
import { HAVE_TORCH, runPython } from '../support/torch_ref.js';

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
      { tokens: syntheticTokens(256, 16, 16, 4), outDir: out, maxSteps: 120, batchSize: 32, seed: 3, onStep: (l) => steps.push(l.log.loss!) },
    );
    expect(r.globalStep).toBe(120);
    const lines = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBe(120);
    expect(lines[0].step).toBe(0);
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

  it('resume from last.ckpt continues weights, AdamW, data order and dropout draws exactly; abort saves a checkpoint', async () => {
    const data = syntheticTokens(64, 16, 16, 4);
    // dropouts on (label, FFN, residual): exact resume needs the generator state too
    const params = { ...MODEL, class_dropout_prob: 0.1, ffn_dropout_p: 0.1, resid_dropout_p: 0.1 };
    const cfg = { transformer_config: { params }, learning_rate: 1e-3 };
    const a = mkdtempSync(join(tmpdir(), 'ibq-ar-a-'));
    const full = await trainTransformer(cfg, { tokens: data, outDir: a, maxSteps: 12, batchSize: 16, seed: 5 });

    const b = mkdtempSync(join(tmpdir(), 'ibq-ar-b-'));
    const ac = new AbortController();
    const first = await trainTransformer(cfg, {
      tokens: data, outDir: b, maxSteps: 12, batchSize: 16, seed: 5, signal: ac.signal, checkpointEvery: 100,
      onStep: (l) => l.step === 4 && ac.abort(),
    });
    expect(first.stopped).toBe('aborted');
    expect(first.globalStep).toBe(5);
    expect(first.lastCheckpoint).toBe(join(b, 'last.ckpt'));
    const second = await trainTransformer(cfg, { tokens: data, outDir: b, maxSteps: 12, batchSize: 16, seed: 5, resume: true });
    expect(second.globalStep).toBe(12);
    expect(second.lastLoss).toBe(full.lastLoss);
    const wa = full.model.stateDict().get('head.weight')!.dataSync() as Float32Array;
    const wb = second.model.stateDict().get('head.weight')!.dataSync() as Float32Array;
    expect(Array.from(wb)).toEqual(Array.from(wa));
    // the checkpoint is an AR checkpoint: fromCheckpoint reads weights and config from it
    const re = await Transformer.fromCheckpoint(join(b, 'last.ckpt'));
    expect(re.config.class_dropout_prob).toBe(0.1);
    expect(Array.from(re.stateDict().get('head.weight')!.dataSync() as Float32Array)).toEqual(Array.from(wa));
    // resuming with another seed or batch size is refused (the data order would differ)
    await expect(trainTransformer(cfg, { tokens: data, outDir: b, maxSteps: 14, batchSize: 8, seed: 5, resume: true })).rejects.toThrow(/batch_size 16, this run has 8/);
  });

  it.skipIf(!HAVE_TORCH)('last.ckpt is Lightning-shaped: torch.load reads it and torch AdamW loads its optimizer state', async () => {
    const out = mkdtempSync(join(tmpdir(), 'ibq-ar-ckpt-'));
    const r = await trainTransformer({ transformer_config: { params: MODEL }, learning_rate: 2e-3, weight_decay: 0.05 },
      { tokens: syntheticTokens(32, 16, 16, 4), outDir: out, maxSteps: 3, batchSize: 8, seed: 1, checkpointEvery: 2 });
    const names = r.model.parameterNames();
    const sd = r.model.stateDict();
    const py = await runPython(`import sys, json, torch
ck = torch.load(sys.argv[1], map_location='cpu')
sd = ck['state_dict']
names = json.loads(sys.argv[2])
decay = [n for n in names if sd['transformer.' + n].dim() >= 2]
nodecay = [n for n in names if sd['transformer.' + n].dim() < 2]
ps = [torch.nn.Parameter(sd['transformer.' + n].clone()) for n in decay + nodecay]
opt = torch.optim.AdamW([{'params': ps[:len(decay)]}, {'params': ps[len(decay):], 'weight_decay': 0.0}], betas=(0.9, 0.95))
opt.load_state_dict(ck['optimizer_states'][0])
st = opt.state[ps[0]]
hp = ck['hyper_parameters']
print(json.dumps({'keys': sorted(k for k in ck if k != 'state_dict'), 'global_step': ck['global_step'], 'epoch': ck['epoch'],
  'n': len(sd), 'first': next(iter(sd)), 'head': sd['transformer.head.weight'].abs().sum().item(),
  'step': float(st['step']), 'exp_avg_shape': list(st['exp_avg'].shape), 'wd': [g['weight_decay'] for g in opt.param_groups],
  'lr': opt.param_groups[0]['lr'], 'target': hp['transformer_config']['target'], 'vocab': hp['transformer_config']['params']['vocab_size'],
  'learning_rate': hp['learning_rate'], 'kept': torch.load(sys.argv[3])['global_step'],
  'loops': ck['loops'], 'pl': ck['pytorch-lightning_version'], 'lr_schedulers': ck['lr_schedulers']}))`, [join(out, 'last.ckpt'), JSON.stringify(names), join(out, 'step=00000002.ckpt')]);
    const o = JSON.parse(py);
    // Lightning's full set of entries, as the tokenizer's checkpoints carry it
    expect(o.keys).toEqual(['callbacks', 'epoch', 'global_step', 'hparams_name', 'hyper_parameters', 'ibq_data_position', 'ibq_train', 'loops',
      'lr_schedulers', 'optimizer_states', 'pytorch-lightning_version']);
    expect(o.loops).toEqual({ fit_loop: { 'epoch_loop.state_dict': { _batches_that_stepped: 3 } } });
    expect([o.pl, o.lr_schedulers]).toEqual(['2.1.2', []]);
    expect([o.global_step, o.epoch, o.n, o.first]).toEqual([3, 0, sd.size, `transformer.${[...sd.keys()][0]}`]);
    const head = Array.from(sd.get('head.weight')!.dataSync() as Float32Array).reduce((s, v) => s + Math.abs(v), 0);
    expect(Math.abs(o.head - head)).toBeLessThan(1e-3 * head);
    expect(o.step).toBe(3);
    expect(o.exp_avg_shape).toEqual(sd.get(names.find((n) => sd.get(n)!.shape.length >= 2)!)!.shape);
    expect(o.wd[1]).toBe(0);
    expect(o.lr).toBeGreaterThan(0);
    expect([o.target, o.vocab, o.learning_rate, o.kept]).toEqual(['src.IBQ.modules.transformer.llama.GPT', 16, 2e-3, 2]);
  });

  it('checkpoints written before the Lightning entries were added still load and resume', async () => {
    const out = mkdtempSync(join(tmpdir(), 'ibq-ar-old-'));
    const cfg = { transformer_config: { params: MODEL } };
    const data = syntheticTokens(32, 16, 16, 4);
    const a = await trainTransformer(cfg, { tokens: data, outDir: out, maxSteps: 4, batchSize: 8, seed: 1 });
    const b = mkdtempSync(join(tmpdir(), 'ibq-ar-old-b-'));
    const ac = new AbortController();
    await trainTransformer(cfg, { tokens: data, outDir: b, maxSteps: 4, batchSize: 8, seed: 1, signal: ac.signal, onStep: (l) => l.step === 1 && ac.abort() });
    const path = join(b, 'last.ckpt');
    const ck = await loadCheckpoint(path);
    for (const k of ['pytorch-lightning_version', 'loops', 'callbacks', 'lr_schedulers', 'hparams_name']) {
      expect(k in ck.meta).toBe(true);
      delete ck.meta[k];
    }
    await saveCheckpoint(path, ck);
    expect((await Transformer.fromCheckpoint(path)).config.vocab_size).toBe(MODEL.vocab_size);
    const r = await trainTransformer(cfg, { tokens: data, outDir: b, maxSteps: 4, batchSize: 8, seed: 1, resume: true });
    expect(r.lastLoss).toBe(a.lastLoss);
  });

  it('a non-finite loss stops training, naming the step and the last good checkpoint; nothing is saved', async () => {
    const out = mkdtempSync(join(tmpdir(), 'ibq-ar-nan-'));
    const cfg = { transformer_config: { params: MODEL } };
    const data = syntheticTokens(32, 16, 16, 4);
    await trainTransformer(cfg, { tokens: data, outDir: out, maxSteps: 1, batchSize: 8, seed: 1 });
    // poison the head of the saved checkpoint: the next step's loss is NaN
    const path = join(out, 'last.ckpt');
    const ck = await loadCheckpoint(path);
    const head = ck.stateDict.get('transformer.head.weight')!;
    ck.stateDict.set('transformer.head.weight', tensor(new Float32Array(head.shape[0]! * head.shape[1]!).fill(NaN), head.shape));
    await saveCheckpoint(path, ck);
    const err = await trainTransformer(cfg, { tokens: data, outDir: out, maxSteps: 5, batchSize: 8, seed: 1, resume: true }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ERR_IBQ_NON_FINITE');
    expect(err.message).toBe(`training diverged: non-finite loss (loss NaN, gradient norm NaN) at global step 1; stopped. Nothing was saved for that step. Last good checkpoint: ${path}`);
    expect((await loadCheckpoint(path)).meta.global_step).toBe(1);
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

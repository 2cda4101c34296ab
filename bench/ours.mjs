// Our side of `npm run bench`: one workload in this process, through the package's public API (dist/).
//   node bench/ours.mjs parity <workload> <params.json> <dir>   reads weights.ckpt + inputs.ckpt, writes ours.ckpt
//                                                                (train_step: also state<i>.ckpt, ours_after<i>.ckpt)
//   node bench/ours.mjs time   <workload> <params.json> <dir>   times the workload, prints one JSON line
import { readFileSync } from 'node:fs';
import {
  IBQuantizer, Tokenizer, TokenizerTrainer, Transformer, loadCheckpoint, saveCheckpoint, setNumThreads, tensor,
} from '../dist/index.js';
import { dataParity, timeData } from './data.mjs';

const MB = 2 ** 20;
const pageSize = 4096;

function rssMb() {
  const statm = readFileSync('/proc/self/statm', 'utf8').split(' ');
  return (Number(statm[1]) * pageSize) / MB;
}
const peakMb = () => process.resourceUsage().maxRSS / 1024;

function tokConfig(p) {
  return {
    ddconfig: p.ddconfig, n_embed: p.n_embed, embed_dim: p.embed_dim, beta: 0.25, use_entropy_loss: true,
    entropy_temperature: 0.01, sample_minimization_weight: 1.0, batch_maximization_weight: 1.0,
  };
}
function gptConfig(p) {
  const { vocab_size, block_size, n_layer, n_head, n_embd, class_num } = p;
  return { vocab_size, block_size, n_layer, n_head, n_embd, cond_dim: n_embd, class_num };
}

// Deterministic uniform numbers (mulberry32) for inputs of the timing runs.
function uniform(n, seed, lo = -1, hi = 1) {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}
// Standard normal numbers (Box-Muller on the uniform stream): the same distribution as the reference's randn,
// which matters for the quantizer (the spread of its logits / 0.01 decides how many softmax terms underflow).
function normal(n, seed) {
  const u = uniform(2 * n, seed, 0, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u[2 * i] || 1e-12)) * Math.cos(2 * Math.PI * u[2 * i + 1]);
  return out;
}
const images = (p, b, seed) => tensor(uniform(b * 3 * p.resolution * p.resolution, seed), [b, 3, p.resolution, p.resolution]);
function quantInputs(p) {
  const side = Math.round(Math.sqrt(p.N / p.B));
  const n = p.B * p.D * side * side;
  return [tensor(normal(n, 1), [p.B, p.D, side, side]), tensor(normal(n, 2), [p.B, p.D, side, side])];
}

async function makeTrainer(p, sd) {
  const tok = Tokenizer.create(tokConfig(p), { seed: 0 });
  const trainer = TokenizerTrainer.create(tok, p.lossconfig, { seed: 0, useEma: true }); // as the reference (LitEma)
  if (sd) {
    await trainer.loadStateDict(sd, { strict: true });
  } else {
    // random LPIPS weights (the official ones are not available offline): the module's own initialisation
    const own = [...trainer.stateDict()].filter(([k]) => k.startsWith('loss.perceptual_loss.'));
    await trainer.loadStateDict(own, { strict: false });
  }
  return trainer;
}

const scalar = (v) => tensor(new Float64Array([v]), [], { dtype: 'float64' });

async function parity(w, p, dir) {
  if (w === 'data') {
    await saveCheckpoint(`${dir}/ours.ckpt`, { stateDict: await dataParity(p, dir) });
    return { ok: true };
  }
  const weights = (await loadCheckpoint(`${dir}/weights.ckpt`)).stateDict;
  const inputs = w === 'ckpt_load' ? new Map() : (await loadCheckpoint(`${dir}/inputs.ckpt`)).stateDict;
  const out = new Map();
  if (w === 'train_step') {
    // Step i starts from the reference's state before it (state<i>.ckpt: weights, Adam and EMA states, LeCAM EMA;
    // step 0: weights.ckpt); our whole state after it goes to ours_after<i>.ckpt (bench/ref/train_parity.py).
    const trainer = await makeTrainer(p, weights);
    for (let i = 0; i < p.steps; i++) {
      if (i > 0) await trainer.restore(await loadCheckpoint(`${dir}/state${i}.ckpt`), `state${i}.ckpt`);
      const log = await trainer.step(inputs.get(`x${i}`), { globalStep: i });
      for (const [k, v] of Object.entries(log)) out.set(`step${i}/${k}`, scalar(v));
      await trainer.save(`${dir}/ours_after${i}.ckpt`, { epoch: 0, globalStep: i + 1 });
    }
  } else if (w === 'encode_decode') {
    const tok = Tokenizer.create(tokConfig(p));
    await tok.loadStateDict(weights, { strict: true });
    tok.eval();
    const { indices, z_q } = await tok.encode(inputs.get('x'));
    out.set('indices', indices).set('z_q', z_q).set('xrec', await tok.decode(indices));
  } else if (w.startsWith('quantizer')) {
    const q = new IBQuantizer({ n_embed: p.K, embed_dim: p.D, use_entropy_loss: true, ...(p.chunk ? { quantizer_chunk: p.chunk } : {}) });
    await q.loadStateDict(weights, { strict: true });
    const r = await q.lossAndGrads(inputs.get('z'), inputs.get('grad_out'), { quant_loss_weight: 1.0, entropy_loss_weight: 0.05 });
    for (const k of ['z_q', 'quant_loss', 'sample_entropy', 'avg_entropy', 'entropy_loss', 'indices']) out.set(k, r.outputs[k]);
    out.set('grad/z', r.grads.get('z')).set('grad/embedding.weight', r.grads.get('embedding.weight'));
  } else if (w === 'ar_sampling') {
    const tr = Transformer.create(gptConfig(p));
    await tr.loadStateDict(weights, { strict: true });
    tr.eval();
    const labels = [...inputs.get('labels').dataSync()].map(Number);
    out.set('logits', await tr.forward(inputs.get('tokens'), inputs.get('labels')));
    out.set('greedy', await tr.sample({ labels, cfgScale: p.cfg_scale, temperature: 0 }));
    out.set('sampled', await tr.sample({ labels, cfgScale: p.cfg_scale, temperature: 1.0, seed: 7 }));
  } else if (w === 'ckpt_load') {
    for (const [k, v] of weights) out.set(k, v);
  } else {
    throw new Error(`unknown workload ${w}`);
  }
  await saveCheckpoint(`${dir}/ours.ckpt`, { stateDict: out });
  return { ok: true };
}

async function timed(fn, warmup, reps, warmFn) {
  for (let i = 0; i < warmup; i++) await (warmFn ?? fn)();
  const base = rssMb();
  const times = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return [times, base];
}

async function time(w, p) {
  const extra = {};
  let times, base;
  if (w === 'train_step') {
    const trainer = await makeTrainer(p, null);
    const x = images(p, p.batch, 1);
    [times, base] = await timed(() => trainer.step(x), p.warmup, p.reps);
  } else if (w === 'encode_decode') {
    const tok = Tokenizer.create(tokConfig(p), { seed: 0 }).eval();
    const x = images(p, p.batch, 1);
    const xw = images(p, p.warmup_batch ?? p.batch, 2);
    const run = async (inp) => {
      const { indices, z_q } = await tok.encode(inp);
      const img = await tok.decode(indices);
      indices.dispose(); z_q.dispose(); img.dispose();
    };
    [times, base] = await timed(() => run(x), p.warmup, p.reps, () => run(xw));
  } else if (w.startsWith('quantizer')) {
    const q = new IBQuantizer({ n_embed: p.K, embed_dim: p.D, use_entropy_loss: true }, { seed: 0 });
    const [z, g] = quantInputs(p);
    const run = async () => {
      const r = await q.lossAndGrads(z, g, { quant_loss_weight: 1.0, entropy_loss_weight: 0.05 });
      for (const t of Object.values(r.outputs)) t.dispose();
      for (const t of r.grads.values()) t.dispose();
    };
    [times, base] = await timed(run, p.warmup, p.reps);
  } else if (w === 'ar_sampling') {
    const tr = Transformer.create(gptConfig(p), { seed: 0 }).eval();
    const labels = Array.from({ length: p.batch }, (_, i) => i % p.class_num);
    const run = async () => {
      const t = await tr.sample({ labels, cfgScale: p.cfg_scale, temperature: 1.0, seed: 0 });
      t.dispose();
    };
    [times, base] = await timed(run, p.warmup, p.reps);
    if (p.small_batch) {  // the same sampling at the small batch size (its own timings)
      const small = Array.from({ length: p.small_batch }, (_, i) => i % p.class_num);
      [extra.small_times] = await timed(async () => (await tr.sample({ labels: small, cfgScale: p.cfg_scale, temperature: 1.0, seed: 0 })).dispose(),
        p.warmup, p.reps);
    }
  } else if (w === 'data') {
    [times, base] = await timeData(p, p.dir, rssMb);
    extra.images = p.images;
  } else if (w === 'ckpt_load') {
    if (p.warm_path) (await loadCheckpoint(p.warm_path)).stateDict.forEach((t) => t.dispose());  // warm-up: code paths
    base = rssMb();
    const t0 = process.hrtime.bigint();
    const ck = await loadCheckpoint(p.path);
    times = [Number(process.hrtime.bigint() - t0) / 1e9];
    extra.rss_after_load_mb = rssMb() - base;
    extra.tensors = ck.stateDict.size;
  } else {
    throw new Error(`unknown workload ${w}`);
  }
  return { times, peak_rss_mb: peakMb(), baseline_rss_mb: base, ...extra };
}

// peak: this CPU's float32 FMA peak on one thread (our kernel, the one the environment selects), the figure both
// sides' shares of the peak are computed from.
async function peak() {
  const { native } = await import(new URL('../dist/native.js', import.meta.url).href);
  const { gflops, kernel } = await native.fmaPeak(1.0);
  return { gflops_per_thread: gflops, kernel };
}

const [mode, w, params, dir] = process.argv.slice(2);
const p = JSON.parse(params ?? '{}');
setNumThreads(p.threads ?? 2);
const res = mode === 'peak' ? await peak() : mode === 'parity' ? await parity(w, p, dir) : await time(w, p);
process.stdout.write(`${JSON.stringify(res)}\n`);

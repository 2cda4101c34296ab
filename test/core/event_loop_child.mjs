// Child process of event_loop_delay.test.ts: runs our long calls one phase at a time with nothing else on this
// process's event loop and prints, as one JSON line, the largest event-loop delay (ms) that
// perf_hooks.monitorEventLoopDelay saw during each phase. Usage: node event_loop_child.mjs <outDir> [phase ...]
// (default: every phase). Sizes: the demo's in-memory data (6000 images of 3 x 32 x 32, as Fashion-MNIST) with
// small models, so each phase is short but goes through the whole code path, checkpoints included. Run with
// --expose-gc: the set-up's garbage is collected before each phase.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setPriority } from 'node:os';
import { join } from 'node:path';

import {
  evaluateTokenizer, generate, saveCheckpoint, setNumThreads, tensor, Tokenizer, trainTokenizer, trainTransformer,
} from '../../dist/index.js';

const [outDir, ...only] = process.argv.slice(2);
setNumThreads(1);

const N = 6000, S = 32, CLASSES = 10;
const TOK = {
  ddconfig: { double_z: false, z_channels: 32, resolution: S, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  n_embed: 64, embed_dim: 8, beta: 0.25, use_entropy_loss: true, entropy_temperature: 0.01,
  sample_minimization_weight: 1.0, batch_maximization_weight: 1.0, learning_rate: 1e-4,
  lossconfig: { params: { disc_start: 0, disc_num_layers: 1, disc_ndf: 16, gen_loss_weight: 0.1, lecam_loss_weight: 0.05,
    perceptual_weight: 0.0 } },
};
const AR = { vocab_size: 64, block_size: (S / 2) ** 2, n_layer: 1, n_head: 2, n_embd: 32, class_num: CLASSES, multiple_of: 32 };

// deterministic images in [-1, 1] and labels
const pixels = new Float32Array(N * 3 * S * S);
for (let i = 0; i < pixels.length; i++) pixels[i] = Math.sin(i * 0.37) * Math.cos(i * 0.011);
const images = tensor(pixels, [N, 3, S, S]);
const labels = tensor(BigInt64Array.from({ length: N }, (_, i) => BigInt(i % CLASSES)), [N]);
const tokens = tensor(BigInt64Array.from({ length: N * AR.block_size }, (_, i) => BigInt((i * 7 + (i >> 8)) % AR.vocab_size)), [N, AR.block_size]);
const evalBatches = Array.from({ length: 5 }, (_, b) => tensor(pixels.subarray(b * 100 * 3 * S * S, (b + 1) * 100 * 3 * S * S), [100, 3, S, S]));
const tokenizer = Tokenizer.create(TOK, { seed: 1 }).eval();
let transformer;

const phases = {
  // training on in-memory data, a checkpoint every 2 steps and at the end
  trainTokenizer: async () => {
    const r = await trainTokenizer(TOK, { data: images, outDir: join(outDir, 'tokenizer'), overwrite: true, maxSteps: 4, batchSize: 8, checkpointEvery: 2 });
    r.trainer.dispose();
    r.tokenizer.dispose();
  },
  trainTransformer: async () => {
    const r = await trainTransformer({ transformer_config: { params: AR }, learning_rate: 1e-3 },
      { tokens: { tokens, labels }, outDir: join(outDir, 'transformer'), overwrite: true, maxSteps: 4, batchSize: 8, checkpointEvery: 2 });
    transformer = r.model.eval();
  },
  sample: async () => {
    const t = await transformer.sample({ labels: [0, 1, 2, 3], cfgScale: 2, seed: 1, onProgress() {} });
    t.dispose();
  },
  generate: async () => {
    const g = await generate({ transformer, tokenizer, labels: Array.from({ length: 20 }, (_, i) => i % CLASSES), seed: 1, batchSize: 10 });
    g.tokens.dispose();
    g.images.dispose();
  },
  // a service under load: 16 generate() calls at once on one transformer and one tokenizer
  generate16: async () => {
    const calls = Array.from({ length: 16 }, (_, k) =>
      generate({ transformer, tokenizer, labels: Array.from({ length: 8 }, (_, i) => (i + k) % CLASSES), seed: k, batchSize: 4 }));
    for (const g of await Promise.all(calls)) {
      g.tokens.dispose();
      g.images.dispose();
    }
  },
  // the held-out evaluation of the demo and of `ibq eval-tokenizer` on in-memory batches
  evaluateTokenizer: async () => {
    await evaluateTokenizer({ tokenizer, data: evalBatches });
  },
  // an explicit save: the images (73 MB) and the tokenizer's weights
  saveCheckpoint: async () => {
    const sd = tokenizer.stateDict();
    await saveCheckpoint(join(outDir, 'explicit.ckpt'), { stateDict: new Map([['images', images], ...sd]), meta: { step: 1 } });
    for (const t of sd.values()) t.dispose();
  },
};

// The JS thread alone gets a higher priority where that is allowed (on Linux nice is per thread, and the addon's
// workers, started by this first job, keep theirs): time the OS gives to other processes is not a delay of ours.
await images.data();
try {
  setPriority(-10);
} catch {
  // not permitted: measured at the default priority
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const maxMs = {};
for (const [name, run] of Object.entries(phases)) {
  const wanted = only.length === 0 || only.includes(name);
  if (!wanted && !(name === 'trainTransformer' && ['sample', 'generate', 'generate16'].some((p) => only.includes(p)))) continue;
  globalThis.gc?.(); // the garbage of the set-up (and of earlier phases) is not this phase's
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await sleep(20); // the histogram's first tick is its reference: a stall right at enable() would go unseen
  await run();
  await sleep(20); // a stall at the very end is recorded by the next tick
  h.disable();
  if (wanted) maxMs[name] = Math.round(h.max / 1e4) / 100;
}
console.log(JSON.stringify(maxMs));

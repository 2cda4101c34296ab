// Child process of exit.test.ts: starts a long native call, then ends the process (or the worker thread)
// while it runs. Usage: node exit_child.mjs <scenario>.
import { isMainThread, Worker, workerData } from 'node:worker_threads';

import sharp from 'sharp';

import { Tokenizer, TokenizerTrainer, Transformer, tensor } from '../../dist/index.js';

const scenario = isMainThread ? process.argv[2] : workerData;
const AR = { vocab_size: 128, block_size: 1024, n_layer: 2, n_head: 2, n_embd: 64, class_num: 8, multiple_of: 32 };
const TOK = {
  ddconfig: { double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  n_embed: 256, embed_dim: 16, beta: 0.25, use_entropy_loss: true, entropy_temperature: 0.01,
  sample_minimization_weight: 1.0, batch_maximization_weight: 1.0,
};
const LOSS = { disc_conditional: false, disc_in_channels: 3, disc_start: 0, disc_weight: 0.4, quant_loss_weight: 1.0,
  entropy_loss_weight: 0.05, gen_loss_weight: 0.1, lecam_loss_weight: 0.05, perceptual_weight: 0.0 };

const later = (fn) => setTimeout(fn, 50);

/** Makes the model and inputs; returns the function that starts the long native call. */
async function prepare(kind) {
  if (kind === 'sample') {
    const tr = Transformer.create(AR).eval();
    return () => tr.sample({ labels: [1, 2, 3, 4], seed: 1 });
  }
  if (kind === 'encode') {
    const tok = Tokenizer.create({ ...TOK, ddconfig: { ...TOK.ddconfig, ch: 64, resolution: 64 } }, { seed: 1 }).eval();
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#3a7' } }).png().toBuffer();
    return () => tok.encodeImages(Array(8).fill(png), { imageSize: 64 });
  }
  if (kind === 'train') {
    const tok = Tokenizer.create(TOK, { seed: 1 });
    const trainer = TokenizerTrainer.create(tok, LOSS, { seed: 1 });
    const batch = tensor(new Float32Array(8 * 3 * 32 * 32).map((_, i) => Math.sin(i)), [8, 3, 32, 32]);
    return async () => { for (let s = 0; ; s++) await trainer.step(batch, { globalStep: s }); };
  }
  throw new Error(`unknown scenario ${kind}`);
}

if (scenario === 'sample-throw') {
  (await prepare('sample'))();
  later(() => { throw new Error('thrown while sampling'); });
} else if (scenario.startsWith('worker-') || scenario.startsWith('main-')) {
  // worker-<kind>: the worker calls process.exit(0) during its call; the main thread then runs one more call
  // itself (the addon must still work there). main-<kind>: the main thread exits during the worker's call.
  const [who, kind] = scenario.split('-');
  const w = new Worker(new URL(import.meta.url), { workerData: who === 'worker' ? kind : `busy-${kind}` });
  if (who === 'worker') {
    w.on('exit', async (code) => {
      const tr = Transformer.create({ ...AR, block_size: 16 }).eval();
      const t = await tr.sample({ labels: [1], seed: 2 });
      console.log(`worker exit ${code}, main sample ${t.shape.join('x')}`);
    });
  } else {
    w.on('message', () => later(() => process.exit(0)));
  }
} else if (scenario.startsWith('busy-')) {
  (await prepare(scenario.slice(5)))();
  (await import('node:worker_threads')).parentPort.postMessage('started');
} else {
  (await prepare(scenario))();
  later(() => process.exit(0));
}

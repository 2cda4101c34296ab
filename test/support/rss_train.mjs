// Child process of test/train/loop.test.ts: a small trainTokenizer run of 200 steps (checkpoints every 50) in a
// folder given as argv[2]; prints { at20, at200 } (RSS in bytes after those steps) as JSON. Run with
// MALLOC_MMAP_THRESHOLD_ fixed so that freed large blocks leave RSS at once (see rss_cycles.mjs).
import { tensor, trainTokenizer } from '../../dist/index.js';

const TOK = {
  ddconfig: { double_z: false, z_channels: 32, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 1], num_res_blocks: 1, attn_resolutions: [], dropout: 0 },
  lossconfig: { params: { disc_start: 0, perceptual_weight: 0, lecam_loss_weight: 0.05, disc_num_layers: 1, disc_ndf: 16 } },
  n_embed: 32, embed_dim: 8, learning_rate: 1e-4, use_ema: true,
};
const n = 16;
const data = tensor(Float32Array.from({ length: n * 3 * 16 * 16 }, (_, i) => Math.sin(i * 0.37)), [n, 3, 16, 16]);
const at = {};
await trainTokenizer(TOK, {
  data, outDir: process.argv[2], maxSteps: 200, batchSize: 2, checkpointEvery: 50,
  onStep: (s) => {
    if (s.step === 19) at.at20 = process.memoryUsage().rss;
    if (s.step === 199) at.at200 = process.memoryUsage().rss;
  },
});
console.log(JSON.stringify(at));

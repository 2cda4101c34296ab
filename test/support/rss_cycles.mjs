// Child process of test/core/dispose.test.ts: creates and disposes one kind of model (argv[2]) once to warm up,
// then five times, and prints { bytes (one model's weights), growth (RSS after - before) } as JSON. Run with
// MALLOC_MMAP_THRESHOLD_ fixed so that glibc returns freed large blocks to the system at once (its dynamic
// threshold would otherwise keep them in per-thread arenas and hide whether the memory was released).
import {
  FidInception, LPIPS, Tokenizer, TokenizerTrainer, Transformer, resolveTransformerConfig, tensor,
} from '../../dist/index.js';

const AR = { vocab_size: 16384, block_size: 256, n_layer: 6, n_head: 8, n_embd: 768, class_num: 1000, multiple_of: 256 };
const TOK = {
  ddconfig: { double_z: false, z_channels: 64, resolution: 32, in_channels: 3, out_ch: 3, ch: 64, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0 },
  n_embed: 1024, embed_dim: 64,
};
const weightBytes = (m) => [...m.stateDict().values()].reduce((s, x) => (s += x.shape.reduce((a, b) => a * b, 1) * 4, x.dispose(), s), 0);

const kinds = {
  transformer: { bytes: () => resolveTransformerConfig(AR).parameterCount * 4, make: () => Transformer.create(AR, { seed: 0 }) },
  'transformer-trained': {
    bytes: () => resolveTransformerConfig(AR).parameterCount * 4,
    make: async () => {
      const tr = Transformer.create(AR, { seed: 0 }).train();
      await tr.trainStep(tensor(new BigInt64Array(2 * 256), [2, 256]), tensor(new BigInt64Array(2), [2]), { lr: 1e-4, weightDecay: 0, clip: 1 });
      return tr;
    },
  },
  'tokenizer-trainer': {
    bytes: () => {
      const tok = Tokenizer.create(TOK, { seed: 0 });
      const t = TokenizerTrainer.create(tok, { disc_start: 0, perceptual_weight: 0 }, { useEma: true });
      const b = weightBytes(t);
      t.dispose();
      tok.dispose();
      return b;
    },
    make: () => {
      const tok = Tokenizer.create(TOK, { seed: 0 });
      const t = TokenizerTrainer.create(tok, { disc_start: 0, perceptual_weight: 0 }, { useEma: true });
      return { dispose: () => (t.dispose(), tok.dispose()) };
    },
  },
  'fid-inception': { bytes: () => { const m = FidInception.create(); const b = weightBytes(m); m.dispose(); return b; }, make: () => FidInception.create() },
  lpips: { bytes: () => { const m = LPIPS.create('vgg'); const b = weightBytes(m); m.dispose(); return b; }, make: () => LPIPS.create('vgg') },
};

const kind = kinds[process.argv[2]];
const bytes = kind.bytes();
(await kind.make()).dispose();
const before = process.memoryUsage().rss;
for (let i = 0; i < 5; i++) (await kind.make()).dispose();
console.log(JSON.stringify({ bytes, growth: process.memoryUsage().rss - before }));

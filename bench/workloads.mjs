// The benchmark workloads of `npm run bench`: sizes for the full run, for --quick (CI) and for the parity
// check that precedes every timing (a small instance, same weights on both sides; training: each step from the
// same state on both sides, bench/ref/train_parity.py).
const TOK_LOSS = {
  disc_conditional: false, disc_in_channels: 3, disc_start: 0, disc_weight: 0.4, quant_loss_weight: 1.0,
  entropy_loss_weight: 0.05, gen_loss_weight: 0.1, lecam_loss_weight: 0.05,
};
const dd = (ch, ch_mult, num_res_blocks, resolution, z_channels, attn_resolutions = [16]) => ({
  double_z: false, z_channels, resolution, in_channels: 3, out_ch: 3, ch, ch_mult, num_res_blocks, attn_resolutions, dropout: 0.0,
});
const SMALL_TOK = { ddconfig: dd(32, [1, 2], 1, 32, 32), n_embed: 256, embed_dim: 32, resolution: 32 };
const GPT = (vocab_size, block_size, n_layer, n_embd, n_head, class_num) => ({ vocab_size, block_size, n_layer, n_embd, n_head, class_num });
// A small tokenizer with n_embed codes and a 2x downsampling (16 x 16 tokens at 32 px): the serving workload's
// decoder, so the figures measure the serving path rather than a large decoder.
const SERVING_TOKENIZER = (n_embed) => ({ ddconfig: { z_channels: 32, resolution: 32, ch: 32, ch_mult: [1, 2], num_res_blocks: 1 }, n_embed, embed_dim: 8 });

export const WORKLOADS = {
  train_step: {
    title: 'tokenizer D+G train step',
    describe: (p) => `batch ${p.batch}, ${p.resolution} px, ch ${p.ddconfig.ch} [${p.ddconfig.ch_mult}], ` +
      `K ${p.n_embed}, LPIPS, LeCAM, EMA`,
    unit: 'step',
    full: {
      ddconfig: dd(64, [1, 1, 2], 2, 64, 256), n_embed: 1024, embed_dim: 256, resolution: 64, batch: 8,
      lossconfig: TOK_LOSS, warmup: 1, reps: 3, rounds: 2,
    },
    quick: { ...SMALL_TOK, batch: 2, lossconfig: TOK_LOSS, warmup: 1, reps: 2, rounds: 1 },
    // every step from the same state on both sides (the reference's state before it); after each step: losses,
    // all gradients, moments, updated weights, EMA, buffers, and these named weights across sides (train_parity.py)
    parity: {
      ...SMALL_TOK, n_embed: 64, embed_dim: 16, batch: 2, steps: 2, lossconfig: TOK_LOSS,
      compare_params: ['decoder.conv_out.weight', 'quantize.embedding.weight', 'loss.discriminator.main.0.weight',
        'loss.discriminator.main.3.running_mean', 'model_ema.decoderconv_outweight'],
    },
  },
  encode_decode: {
    title: 'encode + decode',
    describe: (p) => `${p.preset ?? 'small config'}, batch ${p.batch} at ${p.resolution} px`,
    unit: 'batch',
    full: {
      preset: 'IBQ-16384 config', ddconfig: dd(128, [1, 1, 2, 2, 4], 4, 256, 256), n_embed: 16384, embed_dim: 256,
      resolution: 256, batch: 4, warmup: 1, warmup_batch: 1, reps: 1, rounds: 2,
    },
    quick: { ...SMALL_TOK, n_embed: 1024, batch: 2, warmup: 1, reps: 2, rounds: 1 },
    parity: { ...SMALL_TOK, batch: 2 },
  },
  quantizer_16k: {
    title: 'IBQ quantizer fwd+bwd',
    describe: (p) => `K ${p.K}, D ${p.D}, N ${p.N}`,
    unit: 'call',
    full: { K: 16384, D: 256, N: 1024, B: 4, warmup: 1, reps: 3, rounds: 2 },
    quick: { K: 1024, D: 256, N: 256, B: 1, warmup: 1, reps: 2, rounds: 1 },
    parity: { K: 64, D: 16, N: 32, B: 2, chunk: 8 },  // ours: the chunked path (fused kernels) in 4 blocks
  },
  quantizer_262k: {
    title: 'IBQ quantizer fwd+bwd',
    describe: (p) => `K ${p.K}, D ${p.D}, N ${p.N}`,
    unit: 'call',
    full: { K: 262144, D: 256, N: 1024, B: 4, warmup: 0, reps: 1, rounds: 2 },
    quick: { K: 16384, D: 256, N: 256, B: 1, warmup: 0, reps: 2, rounds: 1 },
    parity: { K: 512, D: 32, N: 64, B: 4, chunk: 16 },  // ours: the chunked path (fused kernels) in 4 blocks
  },
  ar_sampling: {
    title: 'AR sampling',
    describe: (p) => `${p.n_layer} layers x ${p.n_embd}, vocab ${p.vocab_size}, ${p.block_size} tokens, batch ${p.batch}` +
      `${p.small_batch ? ` (and ${p.small_batch})` : ''}, CFG ${p.cfg_scale}`,
    unit: 'run',
    full: { ...GPT(16384, 256, 4, 256, 8, 1000), batch: 8, small_batch: 1, cfg_scale: 2.0, warmup: 1, reps: 1, rounds: 3 },
    quick: { ...GPT(1024, 64, 2, 64, 4, 10), batch: 2, small_batch: 1, cfg_scale: 2.0, warmup: 1, reps: 2, rounds: 1 },
    parity: { ...GPT(128, 16, 2, 64, 4, 10), batch: 3, cfg_scale: 2.0 },
  },
  serving: {
    title: 'serving',
    // ours only (no PyTorch server): bench/serving.mjs; the sampling model of ar_sampling behind `ibq serve`
    oursOnly: true,
    describe: (p) => `\`ibq serve\`, ${p.transformer.n_layer} layers x ${p.transformer.n_embd}, vocab ${p.transformer.vocab_size}, ` +
      `${p.transformer.block_size} tokens, CFG ${p.cfg_scale}, max batch ${p.max_batch}; concurrency ${p.concurrency.join('/')}`,
    unit: 'request',
    full: {
      transformer: GPT(16384, 256, 4, 256, 8, 1000), tokenizer: SERVING_TOKENIZER(16384), cfg_scale: 2.0, max_batch: 16, image_size: 32,
      upload_size: 64, concurrency: [1, 4, 16, 64], preset_b: true,
      requests: { generate: { 1: 4, 4: 8, 16: 32, 64: 128 }, tokenize: { 1: 32, 4: 64, 16: 128, 64: 256 } },
    },
    quick: {
      transformer: GPT(1024, 64, 2, 64, 4, 10), tokenizer: SERVING_TOKENIZER(1024), cfg_scale: 2.0, max_batch: 16, image_size: 16,
      upload_size: 32, concurrency: [1, 4, 16, 64], preset_b: false,
      requests: { generate: { 1: 4, 4: 8, 16: 16, 64: 64 }, tokenize: { 1: 16, 4: 32, 16: 64, 64: 128 } },
    },
    parity: {},
  },
  data: {
    title: 'data loading',
    describe: (p) => `${p.images} JPEGs of ImageNet-like sizes (333-640 px): decode + resize + random crop + flip to float32 at ` +
      `${p.size} px, batches of ${p.batch}; ours: decode worker threads, PyTorch: DataLoader + PIL/torchvision, ` +
      `${p.worker_counts.join(' and ')} workers`,
    unit: 'pass',
    full: { images: 256, size: 256, batch: 32, worker_counts: [1, 2], warmup: 1, reps: 3, rounds: 2 },
    quick: { images: 64, size: 256, batch: 16, worker_counts: [1, 2], warmup: 1, reps: 1, rounds: 1 },
    parity: { images: 4, size: 256 },
  },
  ckpt_load: {
    title: 'load of a .ckpt',
    describe: (p) => `${p.count} x ${p.mb} MB float32 tensors (${((p.count * p.mb * 2 ** 20) / 1e9).toFixed(2)} GB), warm page cache`,
    unit: 'load',
    full: { count: 256, mb: 4, rounds: 3 },
    quick: { count: 16, mb: 4, rounds: 1 },
    parity: {},
  },
};

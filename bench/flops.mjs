// FLOP counts of the benchmark workloads, for the share of this CPU's FMA peak each side reaches. Counted: the
// multiply-adds (x2) of convolutions and matrix products, the work an FMA unit does; element-wise work (norms,
// activations, softmax, optimizer updates) is not counted. Training: the backward pass of a layer counts twice its
// forward (gradients of the input and of the weights), once when only the input's gradient is taken.
const conv = (cin, cout, k, hout, wout = hout) => 2 * cin * cout * k * k * hout * wout;

/** Forward FLOP of the VQGAN encoder and decoder (taming layout) for one image, and of the quantizer's products. */
export function vqganFlops(dd, embedDim, nEmbed) {
  const levels = dd.ch_mult.length;
  const attn = (c, r) => 4 * conv(c, c, 1, r) + 2 * 2 * (r * r) ** 2 * c;  // q, k, v, proj_out; q k^T and w v
  const block = (cin, cout, r) => conv(cin, cout, 3, r) + conv(cout, cout, 3, r) + (cin !== cout ? conv(cin, cout, 1, r) : 0);
  let enc = conv(dd.in_channels, dd.ch, 3, dd.resolution), res = dd.resolution, cin = dd.ch;
  for (let i = 0; i < levels; i++) {
    const cout = dd.ch * dd.ch_mult[i];
    for (let j = 0; j < dd.num_res_blocks; j++) {
      enc += block(cin, cout, res) + (dd.attn_resolutions.includes(res) ? attn(cout, res) : 0);
      cin = cout;
    }
    if (i !== levels - 1) { enc += conv(cin, cin, 3, res / 2); res /= 2; }
  }
  const mid = (c, r) => 2 * block(c, c, r) + attn(c, r);
  enc += mid(cin, res) + conv(cin, dd.z_channels, 3, res);
  let dec = conv(dd.z_channels, cin, 3, res) + mid(cin, res);
  for (let i = levels - 1; i >= 0; i--) {
    const cout = dd.ch * dd.ch_mult[i];
    for (let j = 0; j <= dd.num_res_blocks; j++) {
      dec += block(cin, cout, res) + (dd.attn_resolutions.includes(res) ? attn(cout, res) : 0);
      cin = cout;
    }
    if (i !== 0) { res *= 2; dec += conv(cin, cin, 3, res); }
  }
  dec += conv(cin, dd.out_ch, 3, res);
  const positions = (dd.resolution / 2 ** (levels - 1)) ** 2;
  return {
    encoder: enc + conv(dd.z_channels, embedDim, 1, Math.sqrt(positions)),
    decoder: dec + conv(embedDim, dd.z_channels, 1, Math.sqrt(positions)),
    logits: 2 * positions * nEmbed * embedDim,  // z E^T (nearest code); IBQ's soft one-hot times E costs as much again
  };
}

/** VGG16 features up to conv5_3 (LPIPS) at `r` px. */
function vggFlops(r) {
  const cfg = [[3, 64], [64, 64], 'p', [64, 128], [128, 128], 'p', [128, 256], [256, 256], [256, 256], 'p',
    [256, 512], [512, 512], [512, 512], 'p', [512, 512], [512, 512], [512, 512]];
  let f = 0, res = r;
  const lin = [64, 128, 256, 512, 512];
  for (const l of cfg) {
    if (l === 'p') res /= 2;
    else f += conv(l[0], l[1], 3, res);
  }
  return f + lin.reduce((a, c, i) => a + conv(c, 1, 1, r / 2 ** i), 0);
}

/** PatchGAN (NLayerDiscriminator, ndf 64, 3 layers) at `r` px. */
function discFlops(r, ndf = 64, layers = 3) {
  let res = r / 2, f = conv(3, ndf, 4, res), mult = 1;
  for (let n = 1; n < layers; n++) {
    const prev = mult;
    mult = Math.min(2 ** n, 8);
    res /= 2;
    f += conv(ndf * prev, ndf * mult, 4, res);
  }
  const prev = mult;
  mult = Math.min(2 ** layers, 8);
  f += conv(ndf * prev, ndf * mult, 4, res - 1);
  return f + conv(ndf * mult, 1, 4, res - 2);
}

/** FLOP of one timed unit (step, batch, call, run) of a workload; undefined: no arithmetic to speak of. */
export function workloadFlops(name, p) {
  if (name === 'encode_decode') {
    const v = vqganFlops(p.ddconfig, p.embed_dim, p.n_embed);
    return p.batch * (v.encoder + v.logits + v.decoder);
  }
  if (name === 'train_step') {
    // D step: D forward on x and xrec, backward of both (weights); G step: tokenizer forward + backward, LPIPS on x
    // and xrec with the input gradient of the xrec branch, D forward and input gradient on xrec.
    const v = vqganFlops(p.ddconfig, p.embed_dim, p.n_embed);
    const tok = v.encoder + 2 * v.logits + v.decoder, d = discFlops(p.resolution), vgg = vggFlops(p.resolution);
    return p.batch * (3 * tok + (2 * d + 4 * d) + (d + d) + (2 * vgg + vgg));
  }
  if (name.startsWith('quantizer')) return 10 * p.N * p.K * p.D;  // logits, forward and backward: five products
  if (name === 'ar_sampling') {
    const d = p.n_embd, L = p.n_layer, T = p.block_size, V = p.vocab_size;
    const hidden = Math.ceil(Math.floor((2 * 4 * d) / 3) / 256) * 256;
    const seqs = p.batch * (p.cfg_scale > 1 ? 2 : 1);
    const perToken = L * (2 * 4 * d * d + 2 * 3 * d * hidden) + 2 * d * V;
    return seqs * (T * perToken + L * 4 * d * (T * (T + 1)) / 2);
  }
  return undefined;
}

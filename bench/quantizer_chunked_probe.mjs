#!/usr/bin/env node
// Probe: IBQ quantizer forward + backward (IBQuantizer.lossAndGrads, entropy loss on, float32, CPU), dense path
// vs chunked path (quantizer_chunk), time and peak RSS, each run in its own process under /usr/bin/time -v.
//
//   node bench/quantizer_chunked_probe.mjs [--n-embed 262144,16384] [--positions 1024] [--threads 2]
//                                          [--modes dense,auto] [--repeats 1]
//   node bench/quantizer_chunked_probe.mjs --child <mode> <n_embed> <positions> <threads> <repeats>
//   node bench/quantizer_chunked_probe.mjs --train-step <mode> <lpips-ckpt> [--threads 2]
//
// --train-step: one full TokenizerTrainer.step of the IBQ-262144 preset (256 px, batch 1: 256 positions;
// discriminator and generator updates, LPIPS, EMA) with quantizer_chunk <mode>, LPIPS weights taken from
// <lpips-ckpt> (any checkpoint holding loss.perceptual_loss.*, e.g. the `tokenizer` fixture's model.ckpt, whose
// VGG16 weights are random stand-ins of the real shapes); prints its time and peak RSS.
//
// The driver prints one line per (n_embed, mode): the seconds of each lossAndGrads call (no warm-up call; the
// summary uses the fastest) and the peak RSS of the whole process (Node + libtorch + codebook + gradients). A mode is 'dense', 'auto' (the
// default selection), or a positive integer (positions per block). Requires `npm run build` first.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);
const root = new URL('..', import.meta.url);

async function child([mode, nEmbed, positions, threads, repeats]) {
  const { IBQuantizer, setNumThreads, tensor } = await import(new URL('dist/index.js', root).href);
  setNumThreads(Number(threads));
  const K = Number(nEmbed), D = 256, N = Number(positions);
  const chunk = mode === 'dense' || mode === 'auto' ? mode : Number(mode);
  const q = new IBQuantizer({ n_embed: K, embed_dim: D, use_entropy_loss: true, quantizer_chunk: chunk }, { seed: 1 });
  // latents at the codebook's scale / 16 so that softmax and the entropy terms are not saturated
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296 - 0.5) * 3.4;
  const z = tensor(Float32Array.from({ length: N * D }, () => rnd() / 16), [1, D, 1, N]);
  const g = tensor(Float32Array.from({ length: N * D }, rnd), [1, D, 1, N]);
  const times = [];
  let total = NaN;
  for (let r = 0; r < Number(repeats); r++) {
    const t0 = process.hrtime.bigint();
    const res = await q.lossAndGrads(z, g);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    total = Number(res.outputs.total.dataSync()[0]);
    for (const t of Object.values(res.outputs)) t.dispose();
    for (const t of res.grads.values()) t.dispose();
  }
  console.log(JSON.stringify({ mode, n_embed: K, positions: N, threads: Number(threads), seconds: times, total }));
}

async function trainStepChild([mode, lpips, threads]) {
  const { Tokenizer, TokenizerTrainer, tokenizerPreset, setNumThreads, tensor } = await import(new URL('dist/index.js', root).href);
  setNumThreads(Number(threads));
  const cfg = { ...tokenizerPreset('IBQ-262144'), quantizer_chunk: mode === 'dense' || mode === 'auto' ? mode : Number(mode) };
  const tok = Tokenizer.create(cfg, { seed: 1 });
  const trainer = TokenizerTrainer.create(tok, cfg.lossconfig, { useEma: cfg.use_ema }); // the preset's use_ema (true)
  await trainer.loadPerceptual(lpips);
  let s = 7;
  const x = tensor(Float32Array.from({ length: 3 * 256 * 256 }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2147483648) - 1), [1, 3, 256, 256]);
  const t0 = process.hrtime.bigint();
  const log = await trainer.step(x);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ mode, train_step: 'IBQ-262144 256px batch 1', seconds: [seconds], total: log['train/total_loss'] }));
}

function arg(argv, name, fallback) {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : fallback;
}

function driver(argv) {
  const embeds = arg(argv, '--n-embed', '262144,16384').split(',');
  const modes = arg(argv, '--modes', 'dense,auto').split(',');
  const positions = arg(argv, '--positions', '1024');
  const threads = arg(argv, '--threads', '2');
  const repeats = arg(argv, '--repeats', '1');
  const rows = [];
  for (const K of embeds) {
    for (const mode of modes) {
      const r = spawnSync('/usr/bin/time', ['-v', process.execPath, here, '--child', mode, K, positions, threads, repeats], {
        encoding: 'utf8', cwd: fileURLToPath(root), maxBuffer: 1 << 24,
      });
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
      const user = /User time \(seconds\): ([\d.]+)/.exec(r.stderr), sys = /System time \(seconds\): ([\d.]+)/.exec(r.stderr);
      const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (r.status !== 0 || !line || !rss) {
        console.error(`n_embed ${K} ${mode}: failed (status ${r.status})\n${r.stderr.slice(-2000)}`);
        continue;
      }
      const out = JSON.parse(line);
      // CPU seconds of the whole process (start-up and set-up included): steadier than wall time on a shared machine
      const row = { ...out, peak_rss_gib: Number(rss[1]) / 1048576, cpu_seconds: Number(user?.[1]) + Number(sys?.[1]) };
      rows.push(row);
      console.log(JSON.stringify(row));
    }
  }
  for (const K of embeds) {
    const d = rows.find((r) => r.n_embed === Number(K) && r.mode === 'dense');
    for (const c of rows.filter((r) => r.n_embed === Number(K) && r.mode !== 'dense')) {
      if (!d) continue;
      const t = (seconds) => Math.min(...seconds);
      console.log(`n_embed ${K}, ${positions} positions, ${threads} threads: ${c.mode} vs dense: time ${t(c.seconds).toFixed(2)} s vs ` +
        `${t(d.seconds).toFixed(2)} s (x${(t(c.seconds) / t(d.seconds)).toFixed(3)}), peak RSS ${c.peak_rss_gib.toFixed(2)} GiB vs ` +
        `${d.peak_rss_gib.toFixed(2)} GiB (x${(c.peak_rss_gib / d.peak_rss_gib).toFixed(3)}), process CPU ${c.cpu_seconds.toFixed(1)} s vs ` +
        `${d.cpu_seconds.toFixed(1)} s, total ${c.total} vs ${d.total}`);
    }
  }
}

function trainStepDriver(argv) {
  const threads = arg(argv, '--threads', '2');
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, here, '--train-step-child', argv[0], argv[1], threads], {
    encoding: 'utf8', cwd: fileURLToPath(root), maxBuffer: 1 << 24,
  });
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (r.status !== 0 || !line || !rss) {
    console.error(`train step ${argv[0]}: failed (status ${r.status})\n${r.stderr.slice(-2000)}`);
    process.exitCode = 1;
    return;
  }
  console.log(JSON.stringify({ ...JSON.parse(line), peak_rss_gib: Number(rss[1]) / 1048576 }));
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') await child(argv.slice(1));
else if (argv[0] === '--train-step-child') await trainStepChild(argv.slice(1));
else if (argv[0] === '--train-step') trainStepDriver(argv.slice(1));
else driver(argv);

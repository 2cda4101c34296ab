// The `serving` workload of `npm run bench` (ours only: PyTorch has no server to compare with): `ibq serve`'s
// server in a child process (bench/serving_server.mjs), loaded by a bounded closed-loop generator on 127.0.0.1
// (c clients, each sending its next request when the last one is answered) at each concurrency for
// /v1/generate and /v1/tokenize: requests/s, tokens/s, p50/p99 latency, the server's peak RSS; and for the ratios,
// 16 requests one at a time against 16 at once (alternated, the faster of two runs each). Then, in this
// process with the same model and threads, direct Transformer.sample() calls (1 label; 16 labels) for the ratios,
// and (full size) the continuous-batching engine on preset B at 16 concurrent requests.
//   node bench/serving.mjs <params.json>   prints one JSON line
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

import { createGenerator, setNumThreads, Transformer } from '../dist/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const p = JSON.parse(process.argv[2]);
const log = (s) => process.stderr.write(`${s}\n`);
const round = (x, d = 4) => Number(Number(x).toPrecision(d));
const pct = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

function startServer() {
  const child = spawn(process.execPath, [join(HERE, 'serving_server.mjs'), JSON.stringify(p)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve({ child, url: JSON.parse(line).url });
    });
    child.on('exit', (code) => reject(new Error(`serving_server exited (${code})`)));
  });
}

/** Peak RSS (VmHWM) of a process in MB. */
const peakRss = (pid) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

/** `total` requests from `clients` closed-loop clients; returns wall time and per-request latencies (s). */
async function closedLoop(clients, total, send) {
  let next = 0;
  const lat = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < total) {
      const i = next++;
      const s = performance.now();
      await send(i);
      lat.push((performance.now() - s) / 1000);
    }
  }));
  return { wall: (performance.now() - t0) / 1000, lat };
}

async function post(url, body, type) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body });
  if (r.status !== 200) throw new Error(`${url}: HTTP ${r.status} ${await r.text()}`);
  await r.arrayBuffer();
}

const { child, url } = await startServer();
const png = await sharp({ create: { width: p.upload_size, height: p.upload_size, channels: 3, background: '#4080c0' } })
  .composite([{ input: Buffer.from(`<svg width="${p.upload_size}" height="${p.upload_size}"><circle cx="20" cy="20" r="14" fill="#e0a020"/></svg>`) }])
  .png().toBuffer();
const L = p.transformer.block_size;
const routes = {
  generate: (i) => post(`${url}/v1/generate`, JSON.stringify({ class: i % p.transformer.class_num, seed: i, cfg_scale: p.cfg_scale }), 'application/json'),
  tokenize: () => post(`${url}/v1/tokenize`, png, 'image/png'),
};
const levels = {};
try {
  for (const route of ['generate', 'tokenize']) {
    await closedLoop(2, 4, routes[route]); // warm-up
    levels[route] = [];
    for (const c of p.concurrency) {
      const total = Math.max(c, p.requests[route][String(c)]);
      const { wall, lat } = await closedLoop(c, total, routes[route]);
      const row = {
        concurrency: c, requests: total, wall_s: round(wall), requests_per_s: round(total / wall),
        p50_s: round(pct(lat, 0.5)), p99_s: round(pct(lat, 0.99)), peak_rss_mb: round(peakRss(child.pid), 5),
      };
      if (route === 'generate') row.tokens_per_s = round((total * L) / wall);
      levels[route].push(row);
      log(`  ${route} x${c}: ${row.requests_per_s} req/s${row.tokens_per_s ? `, ${row.tokens_per_s} tok/s` : ''}, p50 ${row.p50_s} s, p99 ${row.p99_s} s`);
    }
    // the ratios' pair: 16 requests one at a time and 16 at once, alternated twice (the faster of each counts: other
    // processes' load comes and goes, it never makes a run faster)
    if (p.concurrency.includes(16)) {
      const serial = [], together = [];
      for (let k = 0; k < 2; k++) {
        serial.push(await closedLoop(1, 16, routes[route]));
        together.push(await closedLoop(16, 16, routes[route]));
      }
      const best = (runs) => runs.reduce((a, b) => (b.wall < a.wall ? b : a));
      const s1 = best(serial), s16 = best(together);
      levels[`${route}_serial16`] = { wall_s: round(s1.wall), requests_per_s: round(16 / s1.wall), p99_s: round(pct(s1.lat, 0.99)) };
      levels[`${route}_concurrent16`] = { wall_s: round(s16.wall), requests_per_s: round(16 / s16.wall), tokens_per_s: round((16 * L) / s16.wall) };
    }
  }
} finally {
  child.kill('SIGTERM');
}

// direct sample() calls on the same model (the server stopped: the CPU is ours)
setNumThreads(p.threads);
const tr = (await Transformer.createAsync(p.transformer, { seed: 1 })).eval();
const time = async (f) => {
  const s = performance.now();
  (await f()).dispose?.();
  return (performance.now() - s) / 1000;
};
await time(() => tr.sample({ labels: [0], cfgScale: p.cfg_scale, seed: 1 }));
const one = [], sixteen = [];
for (let i = 0; i < 3; i++) one.push(await time(() => tr.sample({ labels: [i], cfgScale: p.cfg_scale, seed: i })));
for (let i = 0; i < 2; i++) {
  sixteen.push(await time(() => tr.sample({ labels: Array.from({ length: 16 }, (_, k) => k % p.transformer.class_num), cfgScale: p.cfg_scale, seed: i })));
}
tr.dispose();
const s16 = Math.min(...sixteen);
const direct = { sample1_s: round(Math.min(...one)), sample16_s: round(s16), sample16_tokens_per_s: round((16 * L) / s16) };

let presetB;
if (p.preset_b) {
  log('  preset B: 16 concurrent requests on the engine (random weights)');
  const b = (await Transformer.createAsync('B', { seed: 1 })).eval();
  const g = createGenerator({ transformer: b, maxBatch: 16 });
  const wall = await time(async () => {
    await Promise.all(Array.from({ length: 16 }, (_, i) => g.generate({ label: i, seed: i, cfgScale: p.cfg_scale })));
    return {};
  });
  presetB = { requests: 16, wall_s: round(wall), tokens_per_s: round((16 * b.config.block_size) / wall), parameters: b.parameterCount };
  b.dispose();
}

const ratios = {};
const { generate_serial16: gs, generate_concurrent16: gc, tokenize_serial16: ts, tokenize_concurrent16: tc } = levels;
if (gs && gc) {
  ratios.generate16_vs_serial = round(gc.requests_per_s / gs.requests_per_s, 3);
  ratios.generate16_vs_sample16 = round(gc.tokens_per_s / direct.sample16_tokens_per_s, 3);
  ratios.p99_c1_vs_sample1 = round(gs.p99_s / direct.sample1_s, 3);
}
if (ts && tc) ratios.tokenize16_vs_serial = round(tc.requests_per_s / ts.requests_per_s, 3);
console.log(JSON.stringify({ levels, direct, ratios, ...(presetB ? { preset_b: presetB } : {}) }));

#!/usr/bin/env node
// Communication cost of a data-parallel step at world size 2 on loopback (CPU, Gloo): per rank, the median time
// of an AR training step alone, of the same step data-parallel (c10d::Reducer, buckets overlapped with backward),
// and of one blocking all-reduce of as many float32 values as the model has parameters.
//   node scripts/bench_ddp.mjs [--layers 4] [--embd 256] [--batch 8] [--steps 10]
// Builds first (npm run build). Prints one JSON line.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const cfg = { layers: Number(args.layers ?? 4), embd: Number(args.embd ?? 256), batch: Number(args.batch ?? 8), steps: Number(args.steps ?? 10) };

if (process.env.RANK === undefined) {
  const port = await new Promise((res) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
  const self = fileURLToPath(import.meta.url);
  const outs = await Promise.all([0, 1].map((rank) => new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [self, ...process.argv.slice(2)], {
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), OMP_NUM_THREADS: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1))) : reject(new Error(`rank ${rank} exited ${code}`))));
  })));
  console.log(JSON.stringify({ worldSize: 2, ...cfg, ranks: outs }));
  process.exit(0);
}

const { distributedEnv, ProcessGroup, setNumThreads, tensor, Transformer } = await import('../dist/index.js');
setNumThreads(1);
const L = 256, V = 1024;
const model = Transformer.create({ vocab_size: V, block_size: L, n_layer: cfg.layers, n_head: 4, n_embd: cfg.embd, class_num: 10,
  resid_dropout_p: 0, ffn_dropout_p: 0, attn_dropout_p: 0, class_dropout_prob: 0 }, { seed: 1 }).train();
const tok = tensor(BigInt64Array.from({ length: cfg.batch * L }, (_, i) => BigInt((i * 7919) % V)), [cfg.batch, L]);
const lab = tensor(BigInt64Array.from({ length: cfg.batch }, (_, i) => BigInt(i % 10)), [cfg.batch]);
const opt = { lr: 1e-4, weightDecay: 0, clip: 1 };
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const time = async (f) => { const t = performance.now(); await f(); return (performance.now() - t) / 1000; };
const pg = await ProcessGroup.fromEnv(distributedEnv());
const params = [...model.stateDict().values()].reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
await model.trainStep(tok, lab, opt); // warm-up
await pg.barrier();
const local = [];
for (let i = 0; i < cfg.steps; i++) local.push(await time(() => model.trainStep(tok, lab, opt)));
await model.setDataParallel(pg);
await model.trainStep(tok, lab, opt);
const ddp = [];
for (let i = 0; i < cfg.steps; i++) ddp.push(await time(() => model.trainStep(tok, lab, opt)));
const flat = tensor(new Float32Array(params), [params]);
await pg.native.allReduceTensors([flat.handle]);
const ar = [];
for (let i = 0; i < cfg.steps; i++) ar.push(await time(() => pg.native.allReduceTensors([flat.handle])));
console.log(JSON.stringify({ rank: pg.rank, parameters: params, stepLocal: median(local), stepDataParallel: median(ddp), allReduce: median(ar) }));
process.exit(0);

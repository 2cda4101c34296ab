// The `data` workload of `npm run bench`, our side: decode + resize (shorter side, bilinear) + random crop + random
// flip to float32 [-1, 1] at p.size px, batches of p.batch decoded into one reused SharedArrayBuffer as the training
// datasets do (BatchBuffers), on p.workers decode worker threads (DecodePool, `--num-workers`) with 2 batches in flight
// (the training loop's prefetch). Parity: centre crops of the same files (decodeImage) against torchvision's.
import { readdirSync } from 'node:fs';
import { BatchBuffers, DecodePool, decodeImage, tensor } from '../dist/index.js';

const files = (dir) => readdirSync(`${dir}/images/x`).sort().map((f) => `${dir}/images/x/${f}`);

/** Centre crops of the parity images, as float32 [3, size, size] tensors named img/<i>. */
export async function dataParity(p, dir) {
  const out = new Map();
  for (const [i, f] of files(dir).entries()) out.set(`img/${i}`, tensor(await decodeImage(f, p.size, 'centre'), [3, p.size, p.size]));
  return out;
}

/** Seconds per pass over the images (p.warmup passes first), and the RSS before the timed passes. */
export async function timeData(p, dir, rssMb) {
  const paths = files(dir);
  const pool = new DecodePool(p.workers);
  let seed = 1;
  const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
  const per = 3 * p.size * p.size;
  const buffers = new BatchBuffers(true);
  const batch = async (idx) => {
    const out = buffers.take(idx.length * per);
    await Promise.all(idx.map((i, k) => pool.decodeInto(paths[i], p.size, { fx: rnd(), fy: rnd(), flip: rnd() < 0.5 }, out.subarray(k * per, (k + 1) * per))));
    const t = tensor(out, [idx.length, 3, p.size, p.size]);
    buffers.give(out);
    return t;
  };
  const pass = async () => {
    const order = paths.map((_, i) => i).sort(() => rnd() - 0.5);
    const batches = [];
    for (let i = 0; i < order.length; i += p.batch) batches.push(order.slice(i, i + p.batch));
    const pending = [];
    let n = 0;
    for (let b = 0; b < batches.length; b++) {
      while (pending.length < 2 && b + pending.length < batches.length) pending.push(batch(batches[b + pending.length]));
      const t = await pending.shift();
      n += t.shape[0];
      t.dispose();
    }
    if (n !== paths.length) throw new Error(`data: ${n} of ${paths.length} images`);
  };
  for (let i = 0; i < p.warmup; i++) await pass();
  const base = rssMb();
  const times = [];
  for (let i = 0; i < p.reps; i++) {
    const t0 = process.hrtime.bigint();
    await pass();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  pool.close();
  return [times, base];
}

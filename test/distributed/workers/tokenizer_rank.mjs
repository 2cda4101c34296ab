// One process of the tokenizer data-parallel tests (test/dist/tokenizer_ddp.test.ts). Argument: a JSON job
// { mode: 'ddp' | 'accumulate', images, out, config, steps, batch, seed }.
//   ddp: joins the group of the torchrun environment; rank r trains on rows [s*W*b + r*b, +b) at step s and saves
//        its full training state after every step (out/rank<r>-step<s>.safetensors).
//   accumulate: one process, batch W*b per step as W micro-batches of b (the ranks' batches, in rank order).
import { writeFileSync } from 'node:fs';

import { distributedEnv, loadNpy, ProcessGroup, saveSafetensors, tensor, Tokenizer, TokenizerTrainer } from '../../../dist/index.js';

const job = JSON.parse(process.argv[2]);
const images = await loadNpy(job.images);
const { lossconfig, ...model } = job.config;
const tok = Tokenizer.create(model, { seed: job.seed });
const trainer = TokenizerTrainer.create(tok, lossconfig, { seed: job.seed, useEma: true, learningRate: model.learning_rate });
const env = distributedEnv();
const W = job.worldSize;
let rank = 0;
if (job.mode === 'ddp' || job.mode === 'nan') {
  const pg = await ProcessGroup.fromEnv(env);
  rank = pg.rank;
  await trainer.setDataParallel(pg);
}
const b = job.batch;
const all = images.dataSync();
const per = images.shape.slice(1).reduce((a, c) => a * c, 1);
const rows = (start, n) => tensor(all.slice(start * per, (start + n) * per), [n, ...images.shape.slice(1)]);
for (let s = 0; s < job.steps; s++) {
  if (job.mode === 'nan') {
    // rank 1's images overflow (3e38) at step 1: every rank must stop with the same error naming rank 1
    const x = s === 1 && rank === 1 ? tensor(new Float32Array(b * per).fill(3e38), [b, ...images.shape.slice(1)]) : rows(s * W * b + rank * b, b);
    try {
      await trainer.step(x);
    } catch (e) {
      writeFileSync(`${job.out}/rank${rank}.error.json`, JSON.stringify({ step: s, name: e.name, code: e.code, message: e.message, ranks: e.ranks }));
      process.exit(3);
    }
  } else if (job.mode === 'ddp') {
    await trainer.step(rows(s * W * b + rank * b, b));
    await saveSafetensors(`${job.out}/rank${rank}-step${s}.safetensors`, trainer.stateDict());
    const st = await trainer.native.getState(); // the LeCAM EMA (floats, not a module buffer)
    writeFileSync(`${job.out}/rank${rank}-step${s}.lecam.json`, JSON.stringify(st.lecam));
  } else {
    await trainer.step(rows(s * W * b, W * b), { accumulate: W });
  }
}
await saveSafetensors(`${job.out}/${job.mode === 'ddp' ? `rank${rank}` : 'single'}.safetensors`, trainer.stateDict());
process.exit(0);

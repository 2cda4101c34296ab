// One process of test/distributed/accumulate_tail.test.ts. Argument: a JSON job
// { mode: 'ddp' | 'single', images, out, config, seed }: 6 images, micro-batches of 1 image.
//   ddp (2 ranks): rank r holds images r, r + 2, r + 4 (DistributedSampler's shard) and accumulates 2 micro-batches:
//        update 0 trains images r and r + 2 (rank 0 then saves the training state, out/after0.ckpt), update 1
//        (the epoch's tail) image r + 4 alone, its loss / 2, the ranks averaging their gradients.
//   single: one process restores out/after0.ckpt and trains the tail as one process accumulating the ranks'
//        micro-batches: images 4 and 5, accumulate 4, each loss / 4.
import { distributedEnv, loadCheckpoint, loadNpy, ProcessGroup, saveSafetensors, tensor, Tokenizer, TokenizerTrainer } from '../../../dist/index.js';

const job = JSON.parse(process.argv[2]);
const images = await loadNpy(job.images);
const { lossconfig, ...model } = job.config;
const tok = Tokenizer.create(model, { seed: job.seed });
const trainer = TokenizerTrainer.create(tok, lossconfig, { seed: job.seed, useEma: true, learningRate: model.learning_rate });
const all = images.dataSync();
const per = images.shape.slice(1).reduce((a, c) => a * c, 1);
const pick = (idx) => tensor(Float32Array.from(idx.flatMap((i) => [...all.subarray(i * per, (i + 1) * per)])), [idx.length, ...images.shape.slice(1)]);
let name = 'single';
if (job.mode === 'ddp') {
  const pg = await ProcessGroup.fromEnv(distributedEnv());
  await trainer.setDataParallel(pg);
  const r = pg.rank;
  await trainer.step(pick([r, r + 2]), { accumulate: 2, microBatch: 1 });
  if (r === 0) await trainer.save(`${job.out}/after0.ckpt`, { epoch: 0, globalStep: 1 });
  await trainer.step(pick([r + 4]), { accumulate: 2, microBatch: 1 });
  name = `rank${r}`;
} else {
  await trainer.restore(await loadCheckpoint(`${job.out}/after0.ckpt`));
  await trainer.step(pick([4, 5]), { accumulate: 4, microBatch: 1 });
}
await saveSafetensors(`${job.out}/${name}.safetensors`, trainer.stateDict());
process.exit(0);

// One process of the validation reduction test (test/distributed/validation_ddp.test.ts). Argument: a JSON job
// { model: 'tokenizer' | 'ar', images, valImages, tokens, valTokens, out, config, ar }: trains that model for two steps with
// learning rate 1e-30 (so every process validates the same weights; 0 is refused) on the torchrun environment's group (or alone when
// WORLD_SIZE is unset), validating after each step (a training step after a validation included), and writes the figures to out/validation-rank<r>.json.
import { writeFileSync } from 'node:fs';

import { loadNpy, loadSafetensors, trainTokenizer, trainTransformer } from '../../../dist/index.js';

const job = JSON.parse(process.argv[2]);
const rank = Number(process.env.RANK ?? 0);
const common = { maxSteps: 2, batchSize: 2, valBatchSize: 2, lr: 1e-30, valEvery: 1, numSanityValSteps: 0, overwrite: true };
const W = process.env.WORLD_SIZE ?? 1;
let r;
if (job.model === 'tokenizer') {
  r = await trainTokenizer(job.config, { ...common, data: await loadNpy(job.images), valData: await loadNpy(job.valImages), outDir: `${job.out}/tok-${W}` });
} else {
  const t = await loadSafetensors(job.tokens), v = await loadSafetensors(job.valTokens);
  r = await trainTransformer(job.ar, {
    ...common, tokens: { tokens: t.get('tokens'), labels: t.get('labels') }, valTokens: { tokens: v.get('tokens'), labels: v.get('labels') },
    outDir: `${job.out}/ar-${W}`,
  });
}
writeFileSync(`${job.out}/validation-${job.model}-${W}-rank${rank}.json`, JSON.stringify(r.validations));
process.exit(0);

// One rank of the tokens-once test: joins the torchrun group, tokenizes job.data with a seeded random tokenizer
// (the same weights on every rank), counting the images handed to the encoder, twice (the second time from the
// cache), and prints what it got as JSON.
import { createHash } from 'node:crypto';

import { distributedEnv, ProcessGroup, Tokenizer } from '../../../dist/index.js';
import { tokensFromImages } from '../../../dist/transformer/tokens.js';

const job = JSON.parse(process.argv[2]);
const env = distributedEnv();
const group = await ProcessGroup.fromEnv(env);
const tok = Tokenizer.create(job.cfg, { seed: 3 });
let counted = 0;
const counting = {
  encodeImages: (inputs, o) => ((counted += inputs.length), tok.encodeImages(inputs, o)),
  encode: (x) => tok.encode(x),
  stateDict: () => tok.stateDict(),
  get training() {
    return tok.training;
  },
  train: (t) => tok.train(t),
};
const runs = [];
for (let k = 0; k < 2; k++) {
  counted = 0;
  const r = await tokensFromImages(counting, job.data, {
    cacheDir: job.cacheDir, imageSize: job.imageSize, writeCache: env.rank === 0, tokensPerImage: job.tokensPerImage, batchSize: 4,
    dist: { rank: env.rank, worldSize: env.worldSize, group },
  });
  const t = await r.tokens.data();
  const l = await r.labels.data();
  runs.push({ encoded: r.encoded, counted, cached: r.cached, n: r.tokens.shape[0], hash: createHash('sha256').update(Buffer.from(t.buffer)).digest('hex'), labels: Array.from(l, Number) });
}
group.destroy();
console.log(JSON.stringify({ rank: env.rank, runs }));

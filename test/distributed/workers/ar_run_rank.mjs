// One rank of test/distributed/run_teardown.test.ts (torchrun environment from runRanks). Argument: a JSON job
// { out, params }. Trains the transformer in a group joined from the environment; after the run rank 0 checks
// that MASTER_PORT is free again (its rendezvous store, which the group held, is gone) and takes one more step
// alone (a model still attached to the group would wait for rank 1 forever). Writes out/rank<r>.json.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';

import { tensor, trainTransformer } from '../../../dist/index.js';

const job = JSON.parse(process.argv[2]);
const { params } = job;
const n = 8;
const tok = BigInt64Array.from({ length: n * params.block_size }, (_, i) => BigInt((i * 7 + 3) % params.vocab_size));
const lab = BigInt64Array.from({ length: n }, (_, i) => BigInt(i % params.class_num));
const tokens = { tokens: tensor(tok, [n, params.block_size]), labels: tensor(lab, [n]) };
const rank = Number(process.env.RANK);
const r = await trainTransformer(params, { tokens, outDir: `${job.out}/run`, batchSize: 2, maxSteps: 2, checkpointEvery: 0 });
let portFree = null, alone = null;
if (rank === 0) {
  portFree = await new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(Number(process.env.MASTER_PORT), '127.0.0.1', () => srv.close(() => resolve(true)));
  });
  alone = (await r.model.trainStep(tokens.tokens, tokens.labels, { lr: 1e-3, weightDecay: 0, clip: 1 })).loss;
}
writeFileSync(`${job.out}/rank${rank}.json`, JSON.stringify({ globalStep: r.globalStep, portFree, alone }));
process.exit(0);

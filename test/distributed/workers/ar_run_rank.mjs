// One rank of test/distributed/run_teardown.test.ts (torchrun environment from runRanks). Argument: a JSON job
// { out, params }. Trains the transformer twice in a row in this process, each run joining the group the
// environment describes (same MASTER_PORT): the second run can only join when the first destroyed its group
// (rank 0's rendezvous store held the port). Then rank 0 alone takes one more step on the first run's model,
// which only returns when that model is no longer attached to a group. Writes out/rank<r>.json.
import { writeFileSync } from 'node:fs';

import { tensor, trainTransformer } from '../../../dist/index.js';

const job = JSON.parse(process.argv[2]);
const { params } = job;
const n = 8;
const tok = BigInt64Array.from({ length: n * params.block_size }, (_, i) => BigInt((i * 7 + 3) % params.vocab_size));
const lab = BigInt64Array.from({ length: n }, (_, i) => BigInt(i % params.class_num));
const tokens = { tokens: tensor(tok, [n, params.block_size]), labels: tensor(lab, [n]) };
const rank = Number(process.env.RANK);
const runs = [];
for (const name of ['first', 'second']) {
  const r = await trainTransformer(params, { tokens, outDir: `${job.out}/${name}`, batchSize: 2, maxSteps: 2, checkpointEvery: 0 });
  runs.push({ globalStep: r.globalStep, model: r.model });
}
let alone = null;
if (rank === 0) {
  const s = await runs[0].model.trainStep(tokens.tokens, tokens.labels, { lr: 1e-3, weightDecay: 0, clip: 1 });
  alone = s.loss;
}
writeFileSync(`${job.out}/rank${rank}.json`, JSON.stringify({ steps: runs.map((r) => r.globalStep), alone }));
process.exit(0);

// One rank of the WebDataset split test: joins the torchrun group, opens the shards (the counting divided among the
// ranks through the group's sum), reads its whole stream of epochs 0 and 1 and prints the keys as JSON.
import { distributedEnv, ProcessGroup, ShardDataset } from '../../../dist/index.js';

const job = JSON.parse(process.argv[2]);
const env = distributedEnv();
const group = await ProcessGroup.fromEnv(env);
const shard = { rank: env.rank, worldSize: env.worldSize };
const ds = await ShardDataset.open(job.spec, { size: 8, train: true, seed: job.seed, shuffleBuffer: job.buffer, shard, sum: (v) => group.sum(v) });
const per = Math.ceil(ds.length / env.worldSize);
const epochs = [];
for (let e = 0; e < 2; e++) {
  const samples = await ds.samples([...Array(per).keys()], e);
  epochs.push(samples.map((s) => `${s.shardPath.split('/').pop()}:${s.key}`));
}
ds.dispose();
group.destroy();
console.log(JSON.stringify({ rank: env.rank, length: ds.length, epochs }));

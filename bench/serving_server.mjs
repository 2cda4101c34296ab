// The server of the `serving` workload (bench/serving.mjs): `ibq serve`'s server (createServer) over models made
// here with fixed seeds, on 127.0.0.1 and a free port; prints {"url"} when ready, drains on SIGTERM.
import { createServer, setNumThreads, Tokenizer, Transformer } from '../dist/index.js';

const p = JSON.parse(process.argv[2]);
setNumThreads(p.threads);
const tokenizer = (await Tokenizer.createAsync(p.tokenizer, { seed: 1 })).eval();
const transformer = (await Transformer.createAsync(p.transformer, { seed: 1 })).eval();
const server = await createServer({ tokenizer, transformer, maxBatch: p.max_batch, maxQueue: 4096, imageSize: p.image_size, logger: false });
const url = await server.listen({ host: '127.0.0.1', port: 0 });
console.log(JSON.stringify({ url }));
process.once('SIGTERM', async () => {
  await server.drain(10_000);
  process.exit(0);
});

/**
 * `ibq serve`: the HTTP server of lib/serve (fastify) over a tokenizer checkpoint and, with --ar, a transformer
 * checkpoint. Prints the address it listens on when ready (stdout); logs one JSON line per request (stderr).
 * SIGTERM / SIGINT: stop accepting, finish the requests in flight within --drain-timeout, dispose the models,
 * exit 0; a second signal exits at once with 128 + n.
 */
import type { Command } from 'commander';

import { createServer } from '../serve/server.js';
import { Transformer } from '../transformer/transformer.js';
import { openTokenizer } from './open_tokenizer.js';
import { intArg, numberArg } from './parse.js';
import { stopSignals } from './progress.js';

interface ServeFlags {
  tokenizer: string;
  tokenizerConfig?: string;
  ar?: string;
  imageSize?: number;
  host: string;
  port: number;
  maxBatch: number;
  maxQueue: number;
  requestTimeout: number;
  drainTimeout: number;
  ema?: boolean;
  device?: string;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('HTTP server: POST /v1/generate (with --ar), /v1/tokenize, /v1/reconstruct; GET /healthz, /metrics')
    .requiredOption('--tokenizer <ckpt>', 'tokenizer checkpoint')
    .option('--tokenizer-config <config>', 'tokenizer config (preset or YAML; default: inferred from the weights)')
    .option('--ar <ckpt>', 'AR transformer checkpoint (serves /v1/generate)')
    .option('--image-size <n>', 'side uploads are resized to (default: the tokenizer resolution)', intArg('--image-size'))
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0: any free one)', intArg('--port', 0, 65535), 8080)
    .option('--max-batch <n>', 'generation requests decoded together', intArg('--max-batch'), 16)
    .option('--max-queue <n>', 'requests waiting beyond the running ones before 429', intArg('--max-queue', 0), 256)
    .option('--request-timeout <s>', 'seconds before a request fails with 504', numberArg('--request-timeout', 0.001), 60)
    .option('--drain-timeout <s>', 'seconds the requests in flight get to finish on SIGTERM / SIGINT', numberArg('--drain-timeout', 0), 30)
    .option('--ema', "load the tokenizer's EMA weights")
    .option('--device <device>', 'cpu or cuda[:i]')
    .action(async (o: ServeFlags) => {
      const stop = stopSignals('draining the server');
      const tokenizer = await openTokenizer({ tokenizer: o.tokenizer, tokenizerConfig: o.tokenizerConfig, ema: o.ema, device: o.device });
      const transformer = o.ar ? await Transformer.fromCheckpoint(o.ar, { device: o.device }) : undefined;
      const server = await createServer({
        tokenizer, transformer, imageSize: o.imageSize, maxBatch: o.maxBatch, maxQueue: o.maxQueue, requestTimeout: o.requestTimeout,
      });
      const address = await server.listen({ host: o.host, port: o.port });
      process.stdout.write(`ibq serve: listening on ${address}\n`);
      if (!stop.signal.aborted) await new Promise((r) => stop.signal.addEventListener('abort', r, { once: true }));
      const { aborted } = await server.drain(o.drainTimeout * 1000);
      process.stderr.write(`ibq serve: stopped${aborted ? ` (${aborted} request(s) cut at the drain timeout)` : ''}\n`);
      process.exit(0);
    });
}

/**
 * `ibq serve` as an API: a fastify server (JSON schemas, pino logging one JSON line per request, prom-client
 * metrics) over a tokenizer and, optionally, a transformer served through a continuous-batching Generator.
 * Routes: POST /v1/generate, /v1/tokenize, /v1/reconstruct (routes.ts), GET /healthz, /metrics. Admission: at
 * most maxBatch + maxQueue work requests at once (429 with Retry-After beyond); each has an AbortSignal fired by a
 * client that disconnects, the request timeout (504) or a drain past its timeout (503). drain() stops accepting
 * work (503), waits for the requests in flight, closes the server and disposes the models.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { pino, type Logger } from 'pino';

import { checkInt, checkNumber, checkOptionKeys, describe } from '../core/errors.js';
import { TokenizerBatcher } from '../tokenizer/batcher.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { createGenerator, type Generator } from '../transformer/generator.js';
import type { Transformer } from '../transformer/transformer.js';
import { HttpError, sendError } from './http_errors.js';
import { createMetrics } from './metrics.js';
import { registerRoutes } from './routes.js';

export interface ServeOptions {
  /** Tokenizes and reconstructs uploads; decodes generated tokens. */
  tokenizer: Tokenizer;
  /** Serves /v1/generate when given (in eval mode; a model in training is refused, ERR_IBQ_BUSY). */
  transformer?: Transformer;
  /** Side uploads are resized and centre-cropped to (default: the tokenizer's ddconfig.resolution). */
  imageSize?: number;
  /** Generation requests decoded together, and images per tokenizer batch (default 16). */
  maxBatch?: number;
  /** Milliseconds concurrent tokenizer calls wait to share one native call (default 1; TokenizerBatcher). */
  batchWindow?: number;
  /** Work requests waiting beyond the running ones before 429 (default 256). */
  maxQueue?: number;
  /** Seconds a request may take before 504 (default 60). */
  requestTimeout?: number;
  /** Largest request body in bytes (default 16 MiB; more: 413). */
  bodyLimit?: number;
  /** Largest upload in pixels, checked on the header (default: defaultMaxPixels()). */
  maxPixels?: number;
  /** A pino logger (one JSON line per request), or false for none; default: pino to stderr. */
  logger?: Logger | false;
}

export interface IbqServer {
  app: FastifyInstance;
  generator?: Generator;
  /** Listens on host:port; resolves with the address (http://host:port). */
  listen(opts: { host?: string; port?: number }): Promise<string>;
  /**
   * Stops accepting work (503, /healthz 503), waits up to `timeoutMs` for the requests in flight (then aborts the
   * rest: 503), closes the server and disposes the models. Resolves with the number of requests aborted.
   */
  drain(timeoutMs: number): Promise<{ aborted: number }>;
  readonly draining: boolean;
  /** Work requests admitted and not finished. */
  readonly inFlight: number;
}

const SERVE_KEYS = ['tokenizer', 'transformer', 'imageSize', 'maxBatch', 'batchWindow', 'maxQueue', 'requestTimeout', 'bodyLimit', 'maxPixels', 'logger'] as const;

/** Checks the options once, naming them; loads nothing. */
function checkServeOptions(o: ServeOptions) {
  if (o === null || typeof o !== 'object') throw new TypeError(`options: expected an object, got ${describe(o)}`);
  checkOptionKeys(o, SERVE_KEYS);
  if (!(o.tokenizer instanceof Tokenizer)) throw new TypeError(`tokenizer: expected a Tokenizer, got ${describe(o.tokenizer)}`);
  const res = o.tokenizer.config.ddconfig.resolution;
  return {
    imageSize: checkInt(o.imageSize ?? res, 'imageSize', 1, 16384),
    maxBatch: checkInt(o.maxBatch ?? 16, 'maxBatch', 1, 4096),
    batchWindow: checkNumber(o.batchWindow ?? 1, 'batchWindow', 0, 50),
    maxQueue: checkInt(o.maxQueue ?? 256, 'maxQueue', 0, 1_000_000),
    requestTimeout: checkNumber(o.requestTimeout ?? 60, 'requestTimeout', 0.001, 86_400),
    bodyLimit: checkInt(o.bodyLimit ?? 16 * 2 ** 20, 'bodyLimit', 1, 2 ** 31),
    maxPixels: o.maxPixels === undefined ? undefined : checkInt(o.maxPixels, 'maxPixels', 1),
  };
}

/**
 * A server over the given models (not listening yet).
 * @throws TypeError / RangeError naming the option
 */
export async function createServer(opts: ServeOptions): Promise<IbqServer> {
  const o = checkServeOptions(opts);
  const { tokenizer, transformer } = opts;
  const logger = opts.logger === undefined ? pino({ level: 'info' }, pino.destination(2)) : opts.logger;
  const batcher = new TokenizerBatcher(tokenizer, { windowMs: o.batchWindow, maxBatch: o.maxBatch });
  const generator = transformer ? createGenerator({ transformer, tokenizer: batcher, maxBatch: o.maxBatch }) : undefined;
  const app: FastifyInstance = Fastify({
    ...(logger ? { loggerInstance: logger as unknown as FastifyBaseLogger } : { logger: false }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: o.bodyLimit,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  const live = new Set<AbortController>();
  let draining = false;
  const metrics = createMetrics({
    queued: () => Math.max(0, live.size - (generator?.stats().running ?? 0)),
    running: () => generator?.stats().running ?? 0,
  });

  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.setErrorHandler((err, req, reply) => {
    if (reply.raw.destroyed) return;
    sendError(reply, err);
  });
  app.setNotFoundHandler((req, reply) => {
    sendError(reply, new HttpError('ERR_IBQ_NOT_FOUND', `${req.method} ${req.url}: no such route`));
  });
  app.addHook('onRequest', async (req) => {
    (req as FastifyRequest & { started?: bigint }).started = process.hrtime.bigint();
    if (draining && req.url.startsWith('/v1/')) throw new HttpError('ERR_IBQ_SHUTTING_DOWN', 'the server is draining: it accepts no new requests');
  });
  app.addHook('onResponse', async (req, reply) => {
    const started = (req as FastifyRequest & { started?: bigint }).started ?? process.hrtime.bigint();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const route = req.routeOptions.url ?? 'unknown';
    metrics.requests.inc({ route, status: String(reply.statusCode) });
    metrics.latency.observe({ route }, seconds);
    req.log.info({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(seconds * 1e4) / 10 }, 'request');
  });

  const admit = async <T>(req: FastifyRequest, reply: FastifyReply, work: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    if (live.size >= o.maxBatch + o.maxQueue) {
      throw new HttpError('ERR_IBQ_QUEUE_FULL', `the queue is full (${live.size} requests in flight); retry later`, 1);
    }
    const ac = new AbortController();
    live.add(ac);
    const timer = setTimeout(() => ac.abort(new HttpError('ERR_IBQ_TIMEOUT', `the request took longer than ${o.requestTimeout} s`)), o.requestTimeout * 1000);
    const onClose = () => {
      if (!reply.raw.writableFinished) ac.abort(new HttpError('ERR_IBQ_ABORTED', 'the client closed the connection'));
    };
    reply.raw.once('close', onClose);
    try {
      return await work(ac.signal);
    } catch (err) {
      // an abort becomes the reason's error (timeout 504, drain 503); a client that left gets nothing
      throw ac.signal.aborted && ac.signal.reason instanceof HttpError ? ac.signal.reason : err;
    } finally {
      clearTimeout(timer);
      reply.raw.off('close', onClose);
      live.delete(ac);
    }
  };

  registerRoutes(app, {
    tokenizer: batcher, generator, imageSize: o.imageSize, maxPixels: o.maxPixels, classNum: transformer?.config.class_num, metrics, admit,
  });
  app.get('/healthz', async (_req, reply) => {
    const body = {
      status: draining ? 'draining' : 'ok',
      models: { tokenizer: true, transformer: !!generator },
      in_flight: live.size,
      ...(generator ? { running: generator.stats().running, max_batch: o.maxBatch } : {}),
    };
    return reply.code(draining ? 503 : 200).send(body);
  });
  app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  await app.ready();

  return {
    app,
    generator,
    get draining() {
      return draining;
    },
    get inFlight() {
      return live.size;
    },
    async listen({ host = '127.0.0.1', port = 8080 }) {
      return app.listen({ host, port });
    },
    async drain(timeoutMs: number) {
      draining = true;
      let aborted = 0;
      const deadline = setTimeout(() => {
        aborted = live.size;
        for (const ac of live) ac.abort(new HttpError('ERR_IBQ_SHUTTING_DOWN', 'the server stopped before this request finished (drain timeout)'));
      }, timeoutMs);
      try {
        while (live.size > 0) await new Promise((r) => setTimeout(r, 10));
        await app.close();
      } finally {
        clearTimeout(deadline);
        transformer?.dispose();
        tokenizer.dispose();
      }
      return { aborted };
    },
  };
}

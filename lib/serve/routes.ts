/**
 * The work routes of `ibq serve`: POST /v1/generate (class -> PNG, or JSON tokens + PNG), /v1/tokenize (image
 * bytes -> token indices) and /v1/reconstruct (image bytes -> PNG), each with a JSON schema and the request's
 * AbortSignal (client gone, request timeout, server draining).
 */
import sharp from 'sharp';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import type { Tensor } from '../core/tensor.js';
import type { Generator } from '../transformer/generator.js';
import type { TokenizerBatcher } from '../tokenizer/batcher.js';
import { HttpError } from './http_errors.js';
import type { ServeMetrics } from './metrics.js';

/** What the routes need from the server (server.ts). */
export interface RouteContext {
  /** The server's tokenizer behind its micro-batcher (concurrent uploads share native calls). */
  tokenizer: TokenizerBatcher;
  generator?: Generator;
  imageSize: number;
  maxPixels?: number;
  classNum?: number;
  metrics: ServeMetrics;
  /** Runs `work` as an admitted request (429 when the queue is full) with its signal; its result is sent. */
  admit<T>(req: FastifyRequest, reply: FastifyReply, work: (signal: AbortSignal) => Promise<T>): Promise<T>;
}

interface GenerateBody {
  class: number;
  seed?: number;
  cfg_scale?: number;
  temperature?: number;
  top_k?: number;
  top_p?: number;
}

/** The JSON schema of /v1/generate's body (class bounded by the model's class_num). */
export function generateSchema(classNum: number) {
  return {
    type: 'object',
    required: ['class'],
    additionalProperties: false,
    properties: {
      class: { type: 'integer', minimum: 0, maximum: classNum - 1 },
      seed: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      cfg_scale: { type: 'number', minimum: 0, maximum: 1e6 },
      temperature: { type: 'number', minimum: 0, maximum: 1e6 },
      top_k: { type: 'integer', minimum: 0, maximum: 2 ** 31 },
      top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    },
  } as const;
}

/** PNG bytes of a uint8 [1, H, W, 3] image. */
async function png(image: Tensor): Promise<Buffer> {
  const [, h, w] = image.shape as [number, number, number, number];
  const px = (await image.data()) as Uint8Array;
  return sharp(Buffer.from(px.buffer, px.byteOffset, px.byteLength), { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

/** The uploaded image bytes (any format sharp reads), or a 400 for an empty or non-binary body. */
function imageBody(req: FastifyRequest): Buffer {
  const body = req.body;
  if (!Buffer.isBuffer(body)) throw new HttpError('ERR_IBQ_BAD_IMAGE', 'body: expected image bytes (e.g. Content-Type: image/png)');
  if (body.length === 0) throw new HttpError('ERR_IBQ_BAD_IMAGE', 'body: empty; expected image bytes');
  return body;
}

const wantsJson = (req: FastifyRequest) => /application\/json/i.test(req.headers.accept ?? '');

export function registerRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{ Body: GenerateBody }>('/v1/generate', {
    schema: { body: ctx.classNum ? generateSchema(ctx.classNum) : { type: 'object' } },
  }, async (req, reply) => {
    const gen = ctx.generator;
    if (!gen) throw new HttpError('ERR_IBQ_NOT_FOUND', '/v1/generate: no generator loaded; start the server with --ar AR.ckpt');
    const b = req.body;
    const out = await ctx.admit(req, reply, (signal) => gen.generate({
      label: b.class, seed: b.seed, cfgScale: b.cfg_scale, temperature: b.temperature, topK: b.top_k, topP: b.top_p,
    }, { signal }));
    try {
      const tokens = out.tokens.dataSync() as BigInt64Array;
      ctx.metrics.tokens(tokens.length);
      const bytes = await png(out.image!);
      reply.header('X-Seed', String(out.seed));
      if (wantsJson(req)) return reply.send({ tokens: Array.from(tokens, Number), seed: out.seed, png: bytes.toString('base64') });
      return reply.type('image/png').send(bytes);
    } finally {
      out.tokens.dispose();
      out.image?.dispose();
    }
  });

  app.post('/v1/tokenize', async (req, reply) => {
    const body = imageBody(req);
    const { indices, images } = await ctx.admit(req, reply, (signal) =>
      ctx.tokenizer.encodeImages([body], { imageSize: ctx.imageSize, maxPixels: ctx.maxPixels, signal }));
    images.dispose();
    try {
      const [, h, w] = indices.shape as [number, number, number];
      const flat = Array.from((await indices.data()) as BigInt64Array, Number);
      const rows = Array.from({ length: h }, (_, y) => flat.slice(y * w, (y + 1) * w));
      return reply.send({ indices: rows, shape: [h, w] });
    } finally {
      indices.dispose();
    }
  });

  app.post('/v1/reconstruct', async (req, reply) => {
    const body = imageBody(req);
    const image = await ctx.admit(req, reply, async (signal) => {
      const { indices, images } = await ctx.tokenizer.encodeImages([body], { imageSize: ctx.imageSize, maxPixels: ctx.maxPixels, signal });
      images.dispose();
      try {
        return await ctx.tokenizer.decodePixels(indices, { signal });
      } finally {
        indices.dispose();
      }
    });
    try {
      return reply.type('image/png').send(await png(image));
    } finally {
      image.dispose();
    }
  });
}

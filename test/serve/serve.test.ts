// `ibq serve` in process (createServer + fastify inject, and a real socket where a disconnect matters): seeded
// requests give identical PNG bytes alone and joined with others; an aborted request frees its slot; queue full
// -> 429; every bad input -> its 4xx, and the server keeps serving; drain with 8 requests in flight.
import { request } from 'node:http';
import { Writable } from 'node:stream';

import { pino } from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { IbqServer } from '../../dist/index.js';
import { fixtureTokenizer } from '../support/ar_tiny.js';
import { HAVE_FIXTURES } from '../support/fixtures.js';
import { bombPng, patternPng, tinyServer } from './support.js';

const gen = (s: IbqServer, body: object, headers: Record<string, string> = {}) =>
  s.app.inject({ method: 'POST', url: '/v1/generate', payload: body, headers });
const post = (s: IbqServer, url: string, payload: Buffer | string, type = 'image/png') =>
  s.app.inject({ method: 'POST', url, payload, headers: { 'content-type': type } });
const errorOf = (r: { json(): unknown }) => (r.json() as { error: { code: string; message: string } }).error;

describe.skipIf(!HAVE_FIXTURES)('ibq serve (in process)', () => {
  let s: IbqServer;
  const lines: string[] = [];
  beforeAll(async () => {
    const sink = new Writable({ write(c, _e, cb) { lines.push(...String(c).split('\n').filter(Boolean)); cb(); } });
    s = await tinyServer({ maxBatch: 4, logger: pino({ level: 'info' }, sink) });
  });
  afterAll(async () => {
    await s.drain(1000);
  });

  it('/v1/generate: seeded requests give identical PNG bytes alone and joined with others at staggered steps', async () => {
    const target = { class: 1, seed: 7, cfg_scale: 2 };
    const alone = await gen(s, target);
    expect(alone.statusCode).toBe(200);
    expect(alone.headers['content-type']).toBe('image/png');
    const meta = await sharp(alone.rawPayload).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([32, 32, 3]);
    for (const delay of [0, 3, 12]) {
      const others = [0, 1, 2, 0, 2].map((c, i) => gen(s, { class: c, seed: 100 + i, cfg_scale: i % 2 ? 1 : 3, top_k: i * 10 }));
      await new Promise((r) => setTimeout(r, delay));
      const joined = await gen(s, target);
      const done = await Promise.all(others);
      expect(done.every((r) => r.statusCode === 200)).toBe(true);
      expect(joined.rawPayload.equals(alone.rawPayload), `joined after ${delay} ms`).toBe(true);
    }
    // Accept: application/json -> the tokens and the same PNG in base64
    const j = await gen(s, target, { accept: 'application/json' });
    const body = j.json() as { tokens: number[]; png: string; seed: number };
    expect(body.tokens).toHaveLength(256);
    expect(body.seed).toBe(7);
    expect(Buffer.from(body.png, 'base64').equals(alone.rawPayload)).toBe(true);
    // another seed, another image
    expect((await gen(s, { ...target, seed: 8 })).rawPayload.equals(alone.rawPayload)).toBe(false);
  });

  it('/v1/tokenize and /v1/reconstruct: indices as the API gives them, a PNG of the image size', async () => {
    const png = await patternPng(1);
    const r = await post(s, '/v1/tokenize', png);
    expect(r.statusCode).toBe(200);
    const t = r.json() as { indices: number[][]; shape: number[] };
    expect(t.shape).toEqual([16, 16]);
    const tok = await fixtureTokenizer();
    const { indices, images } = await tok.encodeImages([png], { imageSize: 32 });
    expect(t.indices.flat()).toEqual(Array.from(indices.dataSync() as BigInt64Array, Number));
    images.dispose();
    tok.dispose();
    const again = await post(s, '/v1/tokenize', png, 'application/octet-stream');
    expect(again.json()).toEqual(t);
    const rec = await post(s, '/v1/reconstruct', png);
    expect(rec.statusCode).toBe(200);
    expect((await sharp(rec.rawPayload).metadata()).width).toBe(32);
  });

  it('each bad input gets its 4xx and JSON error, and the server keeps serving', async () => {
    const png = await patternPng(2);
    const cases: [string, Promise<{ statusCode: number; json(): unknown }>, number, string, RegExp][] = [
      ['not an image', post(s, '/v1/tokenize', Buffer.from('definitely not an image')), 400, 'ERR_IBQ_BAD_IMAGE', /./],
      ['truncated PNG', post(s, '/v1/tokenize', png.subarray(0, png.length >> 1)), 400, 'ERR_IBQ_BAD_IMAGE', /./],
      ['decompression bomb', post(s, '/v1/reconstruct', bombPng(20000, 20000)), 400, 'ERR_IBQ_IMAGE_TOO_LARGE', /20000/],
      ['empty body', post(s, '/v1/tokenize', Buffer.alloc(0)), 400, 'ERR_IBQ_BAD_IMAGE', /empty|image bytes/],
      ['class out of range', gen(s, { class: 3 }), 400, 'ERR_IBQ_INVALID_ARGUMENT', /class/],
      ['non-numeric seed', gen(s, { class: 1, seed: 'abc' }), 400, 'ERR_IBQ_INVALID_ARGUMENT', /seed/],
      ['unknown field', gen(s, { class: 1, cfgScale: 2 }), 400, 'ERR_IBQ_INVALID_ARGUMENT', /additional/],
      ['no class', gen(s, {}), 400, 'ERR_IBQ_INVALID_ARGUMENT', /class/],
      ['bad JSON', post(s, '/v1/generate', '{"class": ', 'application/json'), 400, 'ERR_IBQ_INVALID_ARGUMENT', /./],
      ['body over the limit', post(s, '/v1/tokenize', Buffer.alloc(16 * 2 ** 20 + 1)), 413, 'ERR_IBQ_BODY_TOO_LARGE', /./],
      ['unknown route', s.app.inject({ method: 'GET', url: '/v2/nothing' }), 404, 'ERR_IBQ_NOT_FOUND', /no such route/],
    ];
    for (const [what, p, status, code, message] of cases) {
      const r = await p;
      expect(r.statusCode, what).toBe(status);
      expect(errorOf(r).code, what).toBe(code);
      expect(errorOf(r).message, what).toMatch(message);
    }
    expect((await gen(s, { class: 0, seed: 1 })).statusCode).toBe(200);
    expect((await post(s, '/v1/tokenize', png)).statusCode).toBe(200);
    expect((await s.app.inject({ method: 'GET', url: '/healthz' })).json()).toMatchObject({ status: 'ok', models: { tokenizer: true, transformer: true } });
  });

  it('/metrics: queue length, running batch, requests by route and status, latency, tokens', async () => {
    const text = (await s.app.inject({ method: 'GET', url: '/metrics' })).body;
    for (const name of ['ibq_queue_length', 'ibq_running_batch_size', 'ibq_requests_total', 'ibq_request_duration_seconds_bucket', 'ibq_generated_tokens_total', 'ibq_tokens_per_second', 'process_resident_memory_bytes']) {
      expect(text, name).toContain(name);
    }
    expect(text).toMatch(/ibq_requests_total\{route="\/v1\/generate",status="200"\} \d+/);
    expect(text).toMatch(/ibq_requests_total\{route="\/v1\/tokenize",status="400"\} \d+/);
  });

  it('logs one JSON line per request', async () => {
    lines.length = 0;
    await s.app.inject({ method: 'GET', url: '/healthz' });
    await gen(s, { class: 5 });
    const rec = lines.map((l) => JSON.parse(l) as { msg: string; url: string; status: number; ms: number });
    expect(rec).toHaveLength(2);
    expect(rec.map((r) => [r.msg, r.url, r.status])).toEqual([['request', '/healthz', 200], ['request', '/v1/generate', 400]]);
    expect(rec.every((r) => typeof r.ms === 'number')).toBe(true);
  });
});

describe.skipIf(!HAVE_FIXTURES)('ibq serve: admission, disconnects, timeouts, drain', () => {
  it('without a transformer /v1/generate is a 404 naming --ar', async () => {
    const s = await tinyServer({}, false);
    const r = await gen(s, { class: 0 });
    expect(r.statusCode).toBe(404);
    expect(errorOf(r)).toMatchObject({ code: 'ERR_IBQ_NOT_FOUND', message: expect.stringContaining('--ar') });
    await s.drain(1000);
  });

  it('queue full -> 429 with Retry-After; a client that disconnects frees its slot for the queued request', async () => {
    const s = await tinyServer({ maxBatch: 1, maxQueue: 1 });
    const url = new URL(await s.listen({ port: 0 }));
    // A: runs, then its client goes away; B: waits for the slot; C: over the queue
    const a = request({ host: url.hostname, port: url.port, path: '/v1/generate', method: 'POST', headers: { 'content-type': 'application/json' } });
    a.on('error', () => {});
    a.end(JSON.stringify({ class: 0, seed: 1 }));
    while (s.generator!.stats().running === 0) await new Promise((r) => setTimeout(r, 2));
    const b = gen(s, { class: 2, seed: 2 });
    while (s.inFlight < 2) await new Promise((r) => setTimeout(r, 2));
    const c = await gen(s, { class: 1 });
    expect(c.statusCode).toBe(429);
    expect(c.headers['retry-after']).toBe('1');
    expect(errorOf(c).code).toBe('ERR_IBQ_QUEUE_FULL');
    a.destroy();
    const rb = await b;
    expect(rb.statusCode).toBe(200);
    expect(s.generator!.stats()).toMatchObject({ running: 0, queued: 0 });
    expect(rb.rawPayload.equals((await gen(s, { class: 2, seed: 2 })).rawPayload)).toBe(true);
    await s.drain(1000);
  });

  it('a request past the timeout -> 504 ERR_IBQ_TIMEOUT', async () => {
    const s = await tinyServer({ requestTimeout: 0.005 });
    const r = await gen(s, { class: 0, seed: 1 });
    expect(r.statusCode).toBe(504);
    expect(errorOf(r).code).toBe('ERR_IBQ_TIMEOUT');
    await s.drain(1000);
  });

  it('drain(): the 8 requests in flight complete, new ones get 503, /healthz 503, the models are disposed', async () => {
    const s = await tinyServer({ maxBatch: 4 });
    const inflight = Array.from({ length: 8 }, (_, i) => gen(s, { class: i % 3, seed: i }));
    while (s.inFlight < 8) await new Promise((r) => setTimeout(r, 2));
    const drained = s.drain(30_000);
    const late = await gen(s, { class: 0 });
    expect(late.statusCode).toBe(503);
    expect(errorOf(late).code).toBe('ERR_IBQ_SHUTTING_DOWN');
    expect((await s.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(503);
    const done = await Promise.all(inflight);
    expect(done.map((r) => r.statusCode)).toEqual(Array(8).fill(200));
    expect(await drained).toEqual({ aborted: 0 });
  });
});

/**
 * Errors of `ibq serve` as HTTP responses: JSON `{"error": {"code": "ERR_IBQ_...", "message": "..."}}` with the
 * status of the code (bad input 400, body over the limit 413, queue full 429 with Retry-After, timeout 504,
 * draining 503, no such model 404; anything else 500).
 */
import type { FastifyError, FastifyReply } from 'fastify';

import { IbqError, type ErrorCode } from '../core/errors.js';

const STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_IBQ_INVALID_ARGUMENT: 400,
  ERR_IBQ_BAD_IMAGE: 400,
  ERR_IBQ_IMAGE_TOO_LARGE: 400,
  ERR_IBQ_SHAPE: 400,
  ERR_IBQ_NOT_FOUND: 404,
  ERR_IBQ_BODY_TOO_LARGE: 413,
  ERR_IBQ_QUEUE_FULL: 429,
  ERR_IBQ_SHUTTING_DOWN: 503,
  ERR_IBQ_TIMEOUT: 504,
};

/** An IbqError that carries its HTTP status (and the Retry-After seconds of a 429). */
export class HttpError extends IbqError {
  constructor(code: ErrorCode, message: string, readonly retryAfter?: number) {
    super(code, message);
    this.name = 'HttpError';
  }
  get status(): number {
    return STATUS[this.code] ?? 500;
  }
}

/** Status, code and message of any error a request met (fastify's own: validation, body limit, bad JSON). */
export function describeError(err: unknown): { status: number; code: string; message: string; retryAfter?: number } {
  if (err instanceof HttpError) return { status: err.status, code: err.code, message: err.message, retryAfter: err.retryAfter };
  const e = err as Partial<FastifyError> & { code?: string; message?: string };
  const message = e?.message ?? String(err);
  if (e?.validation) return { status: 400, code: 'ERR_IBQ_INVALID_ARGUMENT', message };
  if (e?.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, code: 'ERR_IBQ_BODY_TOO_LARGE', message };
  if (typeof e?.code === 'string' && e.code.startsWith('ERR_IBQ_')) {
    return { status: STATUS[e.code as ErrorCode] ?? (err instanceof TypeError || err instanceof RangeError ? 400 : 500), code: e.code, message };
  }
  if (err instanceof TypeError || err instanceof RangeError) return { status: 400, code: 'ERR_IBQ_INVALID_ARGUMENT', message };
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { status: e.statusCode === 415 ? 400 : e.statusCode, code: e.statusCode === 404 ? 'ERR_IBQ_NOT_FOUND' : 'ERR_IBQ_INVALID_ARGUMENT', message };
  }
  return { status: 500, code: 'ERR_IBQ_NATIVE', message };
}

/** Sends `err` as the JSON error body with its status (and Retry-After). */
export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  const d = describeError(err);
  if (d.retryAfter !== undefined) reply.header('Retry-After', String(d.retryAfter));
  return reply.code(d.status).type('application/json').send({ error: { code: d.code, message: d.message } });
}

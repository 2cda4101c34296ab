/**
 * Prometheus metrics of `ibq serve` (prom-client, one registry per server): queue length, running batch size,
 * requests by route and status, request latency, generated tokens (counter, and tokens/s over the last 10 s), and
 * prom-client's default process metrics (RSS, event-loop lag).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServeMetrics {
  registry: Registry;
  requests: Counter<'route' | 'status'>;
  latency: Histogram<'route'>;
  /** Adds `n` generated tokens (feeds the counter and the tokens/s window). */
  tokens(n: number): void;
}

/**
 * The metrics of one server; `queue()` and `running()` are read at each scrape (requests waiting for a slot or
 * for the tokenizer, and requests in the decoding batch).
 */
export function createMetrics(read: { queued(): number; running(): number }): ServeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  new Gauge({ name: 'ibq_queue_length', help: 'Requests waiting (not yet being computed)', registers: [registry], collect() { this.set(read.queued()); } });
  new Gauge({ name: 'ibq_running_batch_size', help: 'Generation requests in the running decode batch', registers: [registry], collect() { this.set(read.running()); } });
  const requests = new Counter({ name: 'ibq_requests_total', help: 'Requests by route and HTTP status', labelNames: ['route', 'status'] as const, registers: [registry] });
  const latency = new Histogram({
    name: 'ibq_request_duration_seconds', help: 'Request latency by route', labelNames: ['route'] as const, registers: [registry],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  });
  const tokenCount = new Counter({ name: 'ibq_generated_tokens_total', help: 'Tokens generated', registers: [registry] });
  const window: { t: number; n: number }[] = [];
  const WINDOW_MS = 10_000;
  new Gauge({
    name: 'ibq_tokens_per_second', help: 'Tokens generated per second over the last 10 s', registers: [registry],
    collect() {
      const now = Date.now();
      while (window.length && window[0]!.t < now - WINDOW_MS) window.shift();
      this.set(window.reduce((s, w) => s + w.n, 0) / (WINDOW_MS / 1000));
    },
  });
  return {
    registry, requests, latency,
    tokens(n) {
      tokenCount.inc(n);
      window.push({ t: Date.now(), n });
      if (window.length > 100_000) window.shift();
    },
  };
}

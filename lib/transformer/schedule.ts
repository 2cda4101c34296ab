/**
 * The official AR learning-rate / weight-decay annealing (Net2NetTransformer.lr_wd_annealing of
 * src/IBQ/models/cond_transformer_llama.py, after VAR): linear warmup from wp0 * peak over wp_it
 * iterations, flat for the first 5% of the rest, then linear decay to wpe * peak; weight decay follows a
 * cosine from `wd` to `wdEnd` over the whole run.
 */
export interface AnnealingOptions {
  peakLr: number;
  wd: number;
  /** Final weight decay (official twde; 0 means `wd`). */
  wdEnd: number;
  /** Warmup iterations (official wp epochs x iterations per epoch, rounded). */
  warmupIters: number;
  maxIters: number;
  /** Initial lr ratio of the warmup (official default 0.005). */
  wp0?: number;
  /** Final lr ratio (official default 0.01). */
  wpe?: number;
}

/** lr and weight decay at iteration `it` (0-based global step). */
export function lrWdAnnealing(it: number, o: AnnealingOptions): { lr: number; wd: number } {
  const wp0 = o.wp0 ?? 0.005;
  const wpe = o.wpe ?? 0.01;
  const wpIt = Math.round(o.warmupIters);
  const wdEnd = o.wdEnd || o.wd;
  let ratio: number;
  if (it < wpIt) {
    ratio = wp0 + ((1 - wp0) * it) / wpIt;
  } else {
    const span = o.maxIters - 1 - wpIt;
    const pasd = span > 0 ? (it - wpIt) / span : 1; // [0, 1]
    const T = 0.05;
    ratio = pasd < T ? 1 : wpe + ((1 - wpe) * (1 - pasd)) / (1 - T);
  }
  const p = o.maxIters > 1 ? it / (o.maxIters - 1) : 1;
  const wd = wdEnd + (o.wd - wdEnd) * (0.5 + 0.5 * Math.cos(Math.PI * p));
  return { lr: ratio * o.peakLr, wd };
}

/**
 * The official shapes of tokenizer-training state: lossconfig.params (VQLPIPSWithDiscriminator arguments of
 * src/IBQ/modules/losses/vqperceptual.py, declared in lib/tokenizer/config_fields.ts), and conversions between
 * the native optimizer / scheduler state and what a Lightning checkpoint holds (torch.optim.Adam.state_dict(),
 * torch.optim.lr_scheduler.LambdaLR.state_dict()), so checkpoints load in Python and official ones resume here.
 */
import { resolveFields } from '../config/fields.js';
import { describe } from '../core/errors.js';
import { LOSS_CONFIG_FIELDS, type ResolvedLossConfig } from './training_fields.js';
import type { AdamStateNative } from '../native.js';
import { Tensor, tensor, wrap } from '../core/tensor.js';

export type { LossConfig, ResolvedLossConfig } from './training_fields.js';

/** lossconfig params (or a whole `{ target, params }` lossconfig) checked against the declaration, defaults filled. */
export function resolveLossConfig(v: unknown, arg = 'lossconfig'): ResolvedLossConfig {
  const params = v && typeof v === 'object' && 'params' in v && !('disc_start' in v) ? (v as { params: unknown }).params : v;
  if (params === null || typeof params !== 'object') throw new TypeError(`${arg}: expected the lossconfig params object, got ${describe(v)}`);
  return resolveFields<ResolvedLossConfig>(LOSS_CONFIG_FIELDS, params, arg, {
    what: 'the loss config (VQLPIPSWithDiscriminator arguments)', unknown: 'error',
  });
}

/** Keys of torch.optim.Adam's param_groups entries (torch 2.1, as Lightning 2.1 checkpoints hold them). */
function paramGroup(lr: number, n: number, initialLr: number | undefined): Record<string, unknown> {
  const g: Record<string, unknown> = {
    lr,
    betas: [0.5, 0.9],
    eps: 1e-8,
    weight_decay: 0,
    amsgrad: false,
    maximize: false,
    foreach: null,
    capturable: false,
    differentiable: false,
    fused: null,
  };
  if (initialLr !== undefined) g.initial_lr = initialLr;
  g.params = Array.from({ length: n }, (_, i) => i);
  return g;
}

/** torch.optim.Adam.state_dict() of a native optimizer state ('step' as a float32 0-d tensor, as torch). */
export function adamStateDict(s: AdamStateNative, initialLr?: number): Record<string, unknown> {
  const state = new Map<number, Record<string, unknown>>();
  s.steps.forEach((step, i) => {
    const m = s.expAvg[i], v = s.expAvgSq[i];
    if (step > 0 && m && v) {
      state.set(i, { step: tensor(new Float32Array([step]), []), exp_avg: wrap(m), exp_avg_sq: wrap(v) });
    }
  });
  return { state, param_groups: [paramGroup(s.lr, s.steps.length, initialLr)] };
}

/** The native form of a torch Adam state_dict from a checkpoint (`where` names it in errors). */
export function adamStateFromDict(d: unknown, nParams: number, where: string): AdamStateNative {
  const o = d as { state?: unknown; param_groups?: { lr?: unknown; params?: unknown[] }[] };
  const groups = o?.param_groups;
  if (!Array.isArray(groups) || groups.length !== 1 || typeof groups[0]?.lr !== 'number') {
    throw new RangeError(`${where}: expected an Adam state_dict with one param group`);
  }
  const n = Array.isArray(groups[0].params) ? groups[0].params.length : -1;
  if (n !== nParams) throw new RangeError(`${where}: the optimizer holds ${n} parameters, this model has ${nParams}`);
  const out: AdamStateNative = { lr: groups[0].lr, steps: [], expAvg: [], expAvgSq: [] };
  const state = o.state instanceof Map ? o.state : new Map(Object.entries((o.state as object) ?? {}).map(([k, v]) => [Number(k), v]));
  for (let i = 0; i < nParams; i++) {
    const s = state.get(i) as { step?: unknown; exp_avg?: unknown; exp_avg_sq?: unknown } | undefined;
    if (!s) {
      out.steps.push(0);
      out.expAvg.push(null);
      out.expAvgSq.push(null);
      continue;
    }
    const step = s.step instanceof Tensor ? Number(s.step.dataSync()[0]) : Number(s.step);
    if (!(s.exp_avg instanceof Tensor) || !(s.exp_avg_sq instanceof Tensor) || !Number.isFinite(step)) {
      throw new RangeError(`${where}: state[${i}] lacks step / exp_avg / exp_avg_sq`);
    }
    out.steps.push(step);
    out.expAvg.push(s.exp_avg.handle);
    out.expAvgSq.push(s.exp_avg_sq.handle);
  }
  return out;
}

/** torch.optim.lr_scheduler.LambdaLR.state_dict() after `steps` scheduler steps (lambdas: functools.partial). */
export function lambdaLrStateDict(baseLr: number, steps: number, lr: number): Record<string, unknown> {
  return {
    base_lrs: [baseLr],
    last_epoch: steps,
    verbose: false,
    _step_count: steps + 1,
    _get_lr_called_within_step: false,
    _last_lr: [lr],
    lr_lambdas: [{}],
  };
}

/**
 * Where a tokenizer training checkpoint's LPIPS weights (loss.perceptual_loss.*) came from, as the checkpoint
 * records it in meta.lpips_weights: { source } for trained weights (the torchvision VGG16 + LPIPS lin files,
 * or the checkpoint they were taken from), null when none are stored (perceptual_weight 0 without weights:
 * the randomly initialised network is not saved). Checkpoints without the record: official ones (Lightning,
 * written by Python; the official loss always loads the pretrained LPIPS) are trusted; those written by
 * ibq-native before the record existed (they carry lecam_ema and rng_state) are not, since they may hold
 * random LPIPS weights.
 */
export function lpipsProvenance(meta: Record<string, unknown> | undefined): { trained: boolean; source?: string; why?: string } {
  const rec = meta?.lpips_weights;
  if (rec === null) return { trained: false, why: 'the checkpoint records that it holds no trained LPIPS weights (meta.lpips_weights: null)' };
  if (rec && typeof rec === 'object' && typeof (rec as { source?: unknown }).source === 'string') {
    return { trained: true, source: (rec as { source: string }).source };
  }
  if (meta && 'lecam_ema' in meta && 'rng_state' in meta) {
    return { trained: false, why: 'the checkpoint was written by ibq-native without recording where its LPIPS weights came from (they may be untrained)' };
  }
  return { trained: true, source: 'official checkpoint' };
}

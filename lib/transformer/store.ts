/**
 * Training checkpoints of the AR transformer: Lightning-shaped torch.save files (saveCheckpoint, atomic) that
 * Python's torch.load and Transformer.fromCheckpoint read.
 *   state_dict        `transformer.<parameter>` as the official AR checkpoints name the weights
 *   optimizer_states  [the AdamW state_dict as torch writes it: state {id: {step, exp_avg, exp_avg_sq}},
 *                      param_groups: decay group (parameters with dim >= 2), then the no-decay group]
 *   global_step, epoch, pytorch-lightning_version, loops, callbacks, lr_schedulers ([]), hparams_name
 *                     (Lightning's full set, lib/io/lightning.ts; files without them still load)
 *   hyper_parameters  { transformer_config: { target, params }, learning_rate, weight_decay, wp, ... }
 *   ibq_train         resume bookkeeping: seed, batch size, planned steps, data key, generator state
 *   ibq_data_position the training loop's data position { epoch, samples } (lib/train/loop.ts DATA_POSITION_KEY)
 */
import { describe } from '../core/errors.js';
import { loadCheckpoint, saveCheckpoint } from '../io/index.js';
import { lightningEntries } from '../io/lightning.js';
import type { StateDict } from '../core/module.js';
import { tensor, Tensor } from '../core/tensor.js';
import type { Transformer } from './transformer.js';

const PREFIX = 'transformer.';
const GPT_TARGET = 'src.IBQ.modules.transformer.llama.GPT';

/** What a training checkpoint records besides weights and optimizer state. */
export interface TrainMeta {
  globalStep: number;
  epoch: number;
  /** Entries written at the checkpoint's top level (the training loop's data position). */
  meta?: Record<string, unknown>;
  /** Net2NetTransformer init_args besides transformer_config (learning_rate, weight_decay, wp, ...). */
  hyperParameters: Record<string, unknown>;
  /** Resume bookkeeping (seed, batchSize, maxSteps, dataKey, ...). */
  train: Record<string, unknown>;
}

/** Parameter names in the optimizer's order (decay group, then no-decay), with the group index of each. */
function paramOrder(model: Transformer, sd: StateDict): { name: string; group: 0 | 1 }[] {
  const names = model.parameterNames();
  const dim = (n: string) => sd.get(n)!.shape.length;
  return [...names.filter((n) => dim(n) >= 2).map((name) => ({ name, group: 0 as const })),
    ...names.filter((n) => dim(n) < 2).map((name) => ({ name, group: 1 as const }))];
}

/** Writes `path` (atomic): weights, optimizer state, steps, configs and the device generator's state. */
export async function saveTrainState(path: string, model: Transformer, m: TrainMeta & { lr: number; weightDecay: number }): Promise<void> {
  const sd = await model.snapshot();
  const opt = model.optimizerState();
  const order = paramOrder(model, sd);
  const state = new Map<number, Record<string, Tensor>>();
  order.forEach(({ name }, id) => {
    const step = opt.get(`${name}.step`);
    if (!step) return;
    // torch 1.13+ keeps `step` as a float32 0-d tensor
    const s = tensor([Number((step.dataSync() as BigInt64Array)[0])], [], { dtype: 'float32' });
    state.set(id, { step: s, exp_avg: opt.get(`${name}.exp_avg`)!, exp_avg_sq: opt.get(`${name}.exp_avg_sq`)! });
  });
  const group = (g: 0 | 1) => ({
    lr: m.lr, betas: [0.9, 0.95], eps: 1e-8, weight_decay: g === 0 ? m.weightDecay : 0, amsgrad: false,
    maximize: false, foreach: null, capturable: false,
    params: order.flatMap((p, id) => (p.group === g ? [id] : [])),
  });
  const rng = model.rngState();
  try {
    await saveCheckpoint(path, {
      stateDict: new Map([...sd].map(([k, v]) => [PREFIX + k, v])),
      meta: {
        epoch: m.epoch,
        global_step: m.globalStep,
        // the official AR training anneals lr and weight decay by hand (lr_wd_annealing): no Lightning scheduler
        ...lightningEntries(m.globalStep),
        hparams_name: 'kwargs',
        optimizer_states: [{ state, param_groups: [group(0), group(1)] }],
        hyper_parameters: { ...m.hyperParameters, transformer_config: { target: GPT_TARGET, params: model.config } },
        ibq_train: { ...m.train, parameter_names: order.map((p) => p.name), rng_state: rng },
        ...m.meta,
      },
    });
  } finally {
    for (const t of [...sd.values(), ...opt.values(), rng, ...[...state.values()].map((s) => s.step)]) t.dispose();
  }
}

function num(v: unknown, what: string, path: string): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new RangeError(`${path}: ${what}: expected a number, got ${describe(v)}`);
  return n;
}

/**
 * Loads weights, AdamW state and the generator state of a training checkpoint into `model`.
 * @returns the saved global step, epoch, bookkeeping (ibq_train) and the checkpoint's top-level entries
 * @throws RangeError naming the file when it is not a trainTransformer checkpoint or does not fit the model
 */
export async function loadTrainState(path: string, model: Transformer): Promise<{ globalStep: number; epoch: number; train: Record<string, unknown>; meta: Record<string, unknown> }> {
  const ck = await loadCheckpoint(path);
  const meta = ck.meta as Record<string, any>;
  const train = meta.ibq_train as Record<string, unknown> | undefined;
  const names = train?.parameter_names;
  const opt = (meta.optimizer_states as any[] | undefined)?.[0]?.state;
  if (!train || !Array.isArray(names) || !(opt instanceof Map || (opt && typeof opt === 'object'))) {
    throw new RangeError(`${path}: not a trainTransformer checkpoint (no ibq_train / optimizer_states entries)`);
  }
  const weights = new Map<string, Tensor>();
  for (const [k, v] of ck.stateDict) if (k.startsWith(PREFIX)) weights.set(k.slice(PREFIX.length), v);
  try {
    await model.loadStateDict(weights);
  } catch (err) {
    throw new RangeError(`${path}: the weights do not fit the model: ${(err as Error).message}`, { cause: err });
  }
  const entries = new Map<string, Tensor>();
  const get = (id: number) => (opt instanceof Map ? opt.get(id) ?? opt.get(BigInt(id)) : opt[id]);
  (names as string[]).forEach((name, id) => {
    const s = get(id) as Record<string, unknown> | undefined;
    if (!s) return;
    const step = s.step instanceof Tensor ? Number((s.step.dataSync() as ArrayLike<number | bigint>)[0]) : num(s.step, 'step', path);
    entries.set(`${name}.exp_avg`, s.exp_avg as Tensor);
    entries.set(`${name}.exp_avg_sq`, s.exp_avg_sq as Tensor);
    entries.set(`${name}.step`, tensor([BigInt(Math.round(step))], [], { dtype: 'int64' }));
  });
  model.loadOptimizerState(entries);
  if (train.rng_state instanceof Tensor) model.setRngState(train.rng_state);
  return { globalStep: num(meta.global_step, 'global_step', path), epoch: num(meta.epoch, 'epoch', path), train, meta };
}

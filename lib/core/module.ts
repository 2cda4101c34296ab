/**
 * Base class of every model's JS object (Tokenizer, Transformer, quantizers): state dicts as
 * Map<string, Tensor>, train/eval, dispose. The native handle derives from ModuleHandle
 * (native/bindings/module_handle.h), so every model shares these methods.
 */
import { describe } from './errors.js';
import { callerStacks, type LoadResult, type ModuleHandleNative, type TensorHandle } from '../native.js';
import { Tensor, wrap } from './tensor.js';

export type { LoadResult, ModuleHandleNative } from '../native.js';

export type StateDict = Map<string, Tensor>;

/** Converts a state dict given by a user into native entries, naming the bad key on error. */
export function stateDictEntries(sd: StateDict | Iterable<[string, Tensor]>, arg = 'stateDict'): [string, TensorHandle][] {
  if (sd === null || typeof sd !== 'object' || typeof (sd as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    throw new TypeError(`${arg}: expected a Map<string, Tensor>, got ${describe(sd)}`);
  }
  const out: [string, TensorHandle][] = [];
  for (const entry of sd as Iterable<[string, Tensor]>) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string') {
      throw new TypeError(`${arg}: expected entries [name: string, tensor: Tensor]`);
    }
    const [k, v] = entry;
    if (!(v instanceof Tensor)) throw new TypeError(`${arg}['${k}']: expected a Tensor, got ${describe(v)}`);
    out.push([k, v.handle]);
  }
  return out;
}

export function entriesToStateDict(entries: [string, TensorHandle][]): StateDict {
  return new Map(entries.map(([k, h]) => [k, wrap(h)]));
}

export abstract class Module<H extends ModuleHandleNative = ModuleHandleNative> {
  /** @internal */
  protected readonly native: H;

  protected constructor(handle: H) {
    this.native = callerStacks(handle);
  }

  /** Copies of the parameters and buffers, keyed as the official PyTorch module names them, in its order. */
  stateDict(): StateDict {
    return entriesToStateDict(this.native.stateDict());
  }

  /**
   * The same copies as stateDict(), made on a worker thread after the model's queued jobs: for checkpoints of
   * large models without blocking the event loop. `skip`: key prefixes left out (not copied).
   */
  async snapshot(opts: { skip?: readonly string[] } = {}): Promise<StateDict> {
    return entriesToStateDict(await this.native.snapshot(opts.skip ?? []));
  }

  /**
   * Loads weights (converted to each parameter's dtype). strict (default true): one error listing missing
   * keys, unexpected keys and shape mismatches, and nothing is loaded. Non-strict: loads what matches and
   * returns the three lists.
   */
  loadStateDict(sd: StateDict | Iterable<[string, Tensor]>, opts: { strict?: boolean } = {}): Promise<LoadResult> {
    return this.native.loadStateDict(stateDictEntries(sd), opts.strict ?? true);
  }

  /**
   * Names of the module's parameters (torch's named_parameters(), all of them, in registration order):
   * what the official LitEma tracks, so `model_ema.<name without dots>` keys map back through these.
   */
  parameterNames(): string[] {
    return this.native.parameterNames();
  }

  /** @internal The native module and queue of this model (native objects built on it, e.g. a trainer, share them). */
  moduleRef(): unknown {
    return this.native.moduleRef();
  }

  train(training = true): this {
    this.native.setTraining(training);
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  get training(): boolean {
    return this.native.isTraining();
  }
  get device(): string {
    return this.native.device();
  }
  /** Frees the weights (after any running call on this model ends). */
  dispose(): void {
    this.native.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

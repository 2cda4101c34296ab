/**
 * State-dict helpers shared by every model: key prefixes (`transformer.`, `first_stage_model.`) and the
 * official LitEma layout (src/IBQ/modules/ema.py style: buffers `model_ema.<parameter name without
 * dots>` plus `model_ema.decay` and `model_ema.num_updates`).
 */
import { checkString, describe } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';

export type StateDictMap = Map<string, Tensor>;

export const EMA_PREFIX = 'model_ema.';
const EMA_BOOKKEEPING = new Set(['model_ema.decay', 'model_ema.num_updates']);

function checkMap(sd: unknown, arg = 'stateDict'): StateDictMap {
  if (!(sd instanceof Map)) throw new TypeError(`${arg}: expected a Map<string, Tensor>, got ${describe(sd)}`);
  return sd as StateDictMap;
}

/**
 * The entries whose key starts with `prefix`, with the prefix removed (e.g. 'transformer.'). With
 * `keepOthers`, keys without the prefix are kept unchanged (a prefixed and an unprefixed key that
 * collide raise a RangeError).
 */
export function stripPrefix(sd: StateDictMap, prefix: string, opts: { keepOthers?: boolean } = {}): StateDictMap {
  checkMap(sd);
  checkString(prefix, 'prefix');
  const out: StateDictMap = new Map();
  for (const [k, v] of sd) {
    if (k.startsWith(prefix)) {
      const name = k.slice(prefix.length);
      if (out.has(name)) throw new RangeError(`stateDict: '${k}' and '${name}' collide once '${prefix}' is removed`);
      out.set(name, v);
    } else if (opts.keepOthers) {
      if (out.has(k)) throw new RangeError(`stateDict: '${prefix}${k}' and '${k}' collide once '${prefix}' is removed`);
      out.set(k, v);
    }
  }
  return out;
}

/** Prefixes that wrappers add in front of every key: DDP / DataParallel ('module.') and torch.compile ('_orig_mod.'). */
export const WRAPPER_PREFIXES = ['module.', '_orig_mod.'] as const;

/**
 * `sd` without the wrapper prefixes that ALL its keys carry (repeatedly, e.g. 'module._orig_mod.'), and the
 * prefixes removed ('' when none): a checkpoint saved from a DDP- or torch.compile-wrapped model loads like
 * the bare model's.
 */
export function stripWrapperPrefixes(sd: StateDictMap): { stateDict: StateDictMap; stripped: string } {
  checkMap(sd);
  let out = sd;
  let stripped = '';
  for (;;) {
    const keys = [...out.keys()];
    const p = WRAPPER_PREFIXES.find((w) => keys.length > 0 && keys.every((k) => k.startsWith(w)));
    if (!p) return { stateDict: out, stripped };
    out = new Map([...out].map(([k, v]) => [k.slice(p.length), v]));
    stripped += p;
  }
}

/** Every key with `prefix` prepended. */
export function addPrefix(sd: StateDictMap, prefix: string): StateDictMap {
  checkMap(sd);
  checkString(prefix, 'prefix');
  return new Map([...sd].map(([k, v]) => [prefix + k, v]));
}

/**
 * The prefix among `candidates` that every key of `expected` (a model's own keys) appears under in
 * `sd`, '' when the keys are there unprefixed, or undefined when neither (the first candidate matching
 * most keys wins).
 */
export function detectPrefix(sd: StateDictMap, expected: Iterable<string>, candidates: string[]): string | undefined {
  checkMap(sd);
  const keys = [...expected];
  let best: string | undefined;
  let bestHits = 0;
  for (const p of ['', ...candidates]) {
    const hits = keys.filter((k) => sd.has(p + k)).length;
    if (hits > bestHits) (best = p), (bestHits = hits);
  }
  return best;
}

/**
 * The EMA weights of a LitEma checkpoint mapped back onto the model's parameter names: a copy of `sd`
 * without the `model_ema.*` entries in which each parameter `p` takes the tensor of
 * `model_ema.<p without dots>` (buffers keep their regular values, as LitEma tracks parameters only).
 * @param parameterNames the model's own parameter names (Module.parameterNames()), never key order
 * @throws RangeError listing the missing `model_ema.*` keys, or naming two parameters whose names
 *   collide once the dots are removed
 */
export function emaStateDict(sd: StateDictMap, parameterNames: string[]): StateDictMap {
  checkMap(sd);
  if (!Array.isArray(parameterNames)) throw new TypeError(`parameterNames: expected an array of strings, got ${describe(parameterNames)}`);
  const owner = new Map<string, string>();
  for (const p of parameterNames) {
    checkString(p, 'parameterNames[]');
    const key = EMA_PREFIX + p.replace(/\./g, '');
    const other = owner.get(key);
    if (other !== undefined) throw new RangeError(`ema: parameters '${other}' and '${p}' both map to '${key}' once the dots are removed`);
    owner.set(key, p);
  }
  const missing = [...owner.keys()].filter((k) => !sd.has(k));
  if (missing.length) {
    const shown = missing.slice(0, 20).join(', ') + (missing.length > 20 ? `, ... (${missing.length} in all)` : '');
    throw new RangeError(`ema: the checkpoint has no EMA weights for ${missing.length} parameter(s): ${shown}`);
  }
  const out: StateDictMap = new Map();
  for (const [k, v] of sd) if (!k.startsWith(EMA_PREFIX)) out.set(k, v);
  for (const [key, p] of owner) out.set(p, sd.get(key)!);
  return out;
}

/** Whether a checkpoint key is LitEma bookkeeping (`model_ema.decay`, `model_ema.num_updates`). */
export function isEmaBookkeeping(key: string): boolean {
  return EMA_BOOKKEEPING.has(key);
}

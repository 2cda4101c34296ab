/**
 * plainConfig: the plain JS value of a config read from checkpoint meta. Lightning's hyper_parameters often
 * hold OmegaConf containers (omegaconf.dictconfig.DictConfig / listconfig.ListConfig, values wrapped in
 * omegaconf.nodes.*Node) or an argparse.Namespace; the safe unpickler keeps those as `Opaque` objects whose
 * content sits under `state._content` / `state._val` / `state`. This unwraps them recursively (plain objects,
 * arrays and Maps are copied with their values unwrapped); other values, Tensors and other Opaque classes
 * included, are returned as they are. Shared references stay shared and cycles are kept (each input object
 * maps to one output object); an unresolved interpolation ('${...}') or a missing value ('???') stays the
 * string OmegaConf stored.
 */
import { Opaque } from './pickle_globals.js';
import { defineKey } from './py_values.js';

const CONTAINERS = new Set(['omegaconf.dictconfig.DictConfig', 'omegaconf.listconfig.ListConfig']);
const NAMESPACES = new Set(['argparse.Namespace', 'types.SimpleNamespace']);

function stateOf(o: Opaque): Record<string, unknown> | undefined {
  const s = o.state;
  return s !== null && typeof s === 'object' && !Array.isArray(s) && !(s instanceof Map) ? (s as Record<string, unknown>) : undefined;
}

/** The value an OmegaConf node or argparse.Namespace stands for, one level deep; undefined: not one. */
function unwrap(o: Opaque): { value: unknown } | undefined {
  const s = stateOf(o);
  if (!s) return undefined;
  if (CONTAINERS.has(o.__class__)) return { value: s._content };
  if (o.__class__.startsWith('omegaconf.nodes.') && '_val' in s) return { value: s._val };
  if (NAMESPACES.has(o.__class__)) return { value: s };
  return undefined;
}

function isPlainObject(v: object): v is Record<string, unknown> {
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

export function plainConfig(value: unknown): unknown {
  const done = new Map<object, unknown>();
  const walk = (v: unknown): unknown => {
    // OmegaConf nests nodes (a DictConfig's _content holds nodes): unwrap until a non-node
    const unwrapping = new Set<object>();
    while (v instanceof Opaque && !unwrapping.has(v)) {
      const u = unwrap(v);
      if (!u) break;
      unwrapping.add(v);
      v = u.value;
    }
    if (v === null || typeof v !== 'object') return v;
    if (done.has(v)) return done.get(v);
    if (Array.isArray(v)) {
      const out: unknown[] = [];
      done.set(v, out);
      for (const x of v) out.push(walk(x));
      return out;
    }
    if (v instanceof Map) {
      const out = new Map<unknown, unknown>();
      done.set(v, out);
      for (const [k, x] of v) out.set(k, walk(x));
      return out;
    }
    if (isPlainObject(v)) {
      const out: Record<string, unknown> = {};
      done.set(v, out);
      for (const [k, x] of Object.entries(v)) defineKey(out, k, walk(x));
      return out;
    }
    return v;
  };
  return walk(value);
}

/**
 * Training checkpoints of the AR transformer: one safetensors file holding the weights under
 * `transformer.` (as the official AR checkpoints name them, so Transformer.fromCheckpoint reads it), the
 * AdamW state under `optimizer.` and, in its metadata, the global step and the configs (JSON).
 * (saveCheckpoint, the torch.save writer, is not available yet; when it is, .ckpt output can follow.)
 */
import { loadSafetensors, readSafetensorsMetadata, saveSafetensors } from './io/index.js';
import type { Tensor } from './tensor.js';
import type { Transformer } from './transformer.js';

export async function saveTrainState(path: string, model: Transformer, meta: Record<string, unknown>): Promise<void> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of model.stateDict()) out.set(`transformer.${k}`, v);
  for (const [k, v] of model.optimizerState()) out.set(`optimizer.${k}`, v);
  const md: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) md[k] = JSON.stringify(v);
  await saveSafetensors(path, out, md);
  for (const v of out.values()) v.dispose();
}

/** Loads weights and optimizer state into `model`; returns the saved global step. */
export async function loadTrainState(path: string, model: Transformer): Promise<number> {
  const all = await loadSafetensors(path);
  const md = (await readSafetensorsMetadata(path)) ?? {};
  const weights = new Map<string, Tensor>();
  const optim = new Map<string, Tensor>();
  for (const [k, v] of all) {
    if (k.startsWith('transformer.')) weights.set(k.slice('transformer.'.length), v);
    else if (k.startsWith('optimizer.')) optim.set(k.slice('optimizer.'.length), v);
  }
  await model.loadStateDict(weights);
  model.loadOptimizerState(optim);
  return md.global_step ? Number(JSON.parse(md.global_step)) : 0;
}

/** The metadata's ar_config (a TransformerConfig), when the file is a training checkpoint. */
export async function configFromSafetensors(path: string): Promise<Record<string, unknown> | undefined> {
  const md = await readSafetensorsMetadata(path);
  return md?.ar_config ? (JSON.parse(md.ar_config) as Record<string, unknown>) : undefined;
}

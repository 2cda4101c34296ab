/** Builds the evaluation networks from EvalWeights (file paths, a checkpoint state dict, or ready models). */
import type { StateDict } from '../core/module.js';
import { FidInception } from './inception.js';
import { LPIPS } from './lpips.js';
import { findLpipsFiles, missingLpips, type LpipsNetName } from './weights.js';

export interface EvalWeights {
  /** pt_inception-2015-12-05-6726825d.pth (file or folder); default $IBQ_INCEPTION_WEIGHTS. */
  inception?: string;
  /** Folder with vgg16-397923af.pth + vgg.pth and/or alexnet-owt-7be5be79.pth + alex.pth; default $IBQ_LPIPS_WEIGHTS. */
  lpips?: string;
  /** LPIPS variants to compute; default: every variant whose files are found (VGG also from lpipsStateDict). */
  lpipsNets?: LpipsNetName[];
  /** A state dict holding `loss.perceptual_loss.*` (a tokenizer training checkpoint): VGG LPIPS from it. */
  lpipsStateDict?: StateDict;
  /** Ready networks (they take precedence over files; not disposed by the evaluation). */
  models?: { inception?: FidInception; lpips?: LPIPS[] };
}

export interface EvalNetworks {
  inception: FidInception;
  lpips: LPIPS[];
  /** Disposes what was loaded here (not the `models` passed in). */
  dispose(): void;
}

export async function loadInception(weights: EvalWeights): Promise<{ net: FidInception; owned: boolean }> {
  if (weights.models?.inception) return { net: weights.models.inception, owned: false };
  return { net: await FidInception.load(weights.inception), owned: true };
}

/** LPIPS networks per EvalWeights; MissingWeightsError when a requested (or every) variant has no weights. */
export async function loadLpips(weights: EvalWeights): Promise<{ nets: LPIPS[]; owned: boolean }> {
  if (weights.models?.lpips) return { nets: weights.models.lpips, owned: false };
  const fromCkpt = [...(weights.lpipsStateDict?.keys() ?? [])].some((k) => k.startsWith('loss.perceptual_loss.net.'));
  const available = (n: LpipsNetName) => !!findLpipsFiles(n, weights.lpips) || (n === 'vgg' && fromCkpt);
  const nets = weights.lpipsNets ?? (['vgg', 'alex'] as LpipsNetName[]).filter(available);
  if (nets.length === 0) throw missingLpips('vgg', weights.lpips);
  const out: LPIPS[] = [];
  try {
    for (const n of nets) {
      const files = findLpipsFiles(n, weights.lpips);
      if (files) out.push(await LPIPS.fromFiles(n, files));
      else if (n === 'vgg' && fromCkpt) out.push(await LPIPS.fromStateDict(weights.lpipsStateDict!));
      else throw missingLpips(n, weights.lpips);
    }
  } catch (e) {
    out.forEach((m) => m.dispose());
    throw e;
  }
  return { nets: out, owned: true };
}

/** Inception first: its absence is reported before anything is computed. */
export async function loadNetworks(weights: EvalWeights, needLpips: boolean): Promise<EvalNetworks> {
  const inc = await loadInception(weights);
  let lp: { nets: LPIPS[]; owned: boolean } = { nets: [], owned: false };
  try {
    if (needLpips) lp = await loadLpips(weights);
  } catch (e) {
    if (inc.owned) inc.net.dispose();
    throw e;
  }
  return {
    inception: inc.net,
    lpips: lp.nets,
    dispose() {
      if (inc.owned) inc.net.dispose();
      if (lp.owned) lp.nets.forEach((m) => m.dispose());
    },
  };
}

/** Builds the evaluation networks from EvalWeights (file paths, a checkpoint state dict, or ready models). */
import type { StateDict } from '../core/module.js';
import { FidInception } from './inception.js';
import { LPIPS } from './lpips.js';
import { findLpipsFiles, inceptionWeightsGiven, MissingWeightsError, missingLpips, resolveInceptionWeights, type LpipsNetName } from './weights.js';

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
  /** How the caller names the options in errors (the CLI passes its flags); default the API option names. */
  optionNames?: { inception?: string; lpips?: string };
}

export interface EvalNetworks {
  /** Absent when optional and no weights were named (see `skipped`). */
  inception?: FidInception;
  lpips: LPIPS[];
  /** Metrics not computed, with the reason (which weights are missing and how to pass them). */
  skipped: { rFID?: string; lpips?: string };
  /** Disposes what was loaded here (not the `models` passed in). */
  dispose(): void;
}

export async function loadInception(weights: EvalWeights): Promise<{ net: FidInception; owned: boolean }> {
  if (weights.models?.inception) return { net: weights.models.inception, owned: false };
  return { net: await FidInception.load(resolveInceptionWeights(weights.inception, weights.optionNames?.inception)), owned: true };
}

/** LPIPS networks per EvalWeights; MissingWeightsError when a requested (or every) variant has no weights. */
export async function loadLpips(weights: EvalWeights): Promise<{ nets: LPIPS[]; owned: boolean }> {
  if (weights.models?.lpips) return { nets: weights.models.lpips, owned: false };
  const fromCkpt = [...(weights.lpipsStateDict?.keys() ?? [])].some((k) => k.startsWith('loss.perceptual_loss.net.'));
  const available = (n: LpipsNetName) => !!findLpipsFiles(n, weights.lpips) || (n === 'vgg' && fromCkpt);
  const nets = weights.lpipsNets ?? (['vgg', 'alex'] as LpipsNetName[]).filter(available);
  if (nets.length === 0) throw missingLpips('vgg', weights.lpips, weights.optionNames?.lpips);
  const out: LPIPS[] = [];
  try {
    for (const n of nets) {
      const files = findLpipsFiles(n, weights.lpips);
      if (files) out.push(await LPIPS.fromFiles(n, files));
      else if (n === 'vgg' && fromCkpt) out.push(await LPIPS.fromStateDict(weights.lpipsStateDict!));
      else throw missingLpips(n, weights.lpips, weights.optionNames?.lpips);
    }
  } catch (e) {
    out.forEach((m) => m.dispose());
    throw e;
  }
  return { nets: out, owned: true };
}

/**
 * Inception first: its absence is reported before anything is computed. `optional`: a metric whose weights
 * were not named at all is skipped (reason in `skipped`) instead of failing: rFID when neither
 * weights.inception nor $IBQ_INCEPTION_WEIGHTS is given, LPIPS when no variant's weights are found and
 * weights.lpipsNets does not ask for one. Weights that were named but are missing are still an error.
 */
export async function loadNetworks(weights: EvalWeights, needLpips: boolean, optional = false): Promise<EvalNetworks> {
  const skipped: EvalNetworks['skipped'] = {};
  let inc: { net: FidInception; owned: boolean } | undefined;
  if (optional && !weights.models?.inception && !inceptionWeightsGiven(weights.inception)) {
    try {
      resolveInceptionWeights(undefined, weights.optionNames?.inception);
    } catch (e) {
      skipped.rFID = (e as Error).message;
    }
  } else {
    inc = await loadInception(weights);
  }
  let lp: { nets: LPIPS[]; owned: boolean } = { nets: [], owned: false };
  try {
    if (needLpips) lp = await loadLpips(weights);
  } catch (e) {
    if (!(optional && e instanceof MissingWeightsError && !weights.lpipsNets)) {
      if (inc?.owned) inc.net.dispose();
      throw e;
    }
    skipped.lpips = e.message;
  }
  return {
    inception: inc?.net,
    lpips: lp.nets,
    skipped,
    dispose() {
      if (inc?.owned) inc.net.dispose();
      if (lp.owned) lp.nets.forEach((m) => m.dispose());
    },
  };
}

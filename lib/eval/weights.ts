/**
 * Weight files of the evaluation networks: where they are looked up and where they are published. Nothing
 * is ever downloaded; a missing file is an error that names it and its source.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { MissingWeightsError } from '../core/errors.js';

export type LpipsNetName = 'vgg' | 'alex';

/** pytorch-fid's FID Inception weights (a port of the TF graph of 2015-12-05). */
export const INCEPTION_WEIGHTS = {
  file: 'pt_inception-2015-12-05-6726825d.pth',
  url: 'https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth',
  env: 'IBQ_INCEPTION_WEIGHTS',
} as const;

/** LPIPS files per backbone: the torchvision ImageNet backbone and the LPIPS v0.1 lin layers. */
export const LPIPS_WEIGHTS: Record<LpipsNetName, { backbone: string; backboneUrl: string; lin: string; linUrl: string }> = {
  vgg: {
    backbone: 'vgg16-397923af.pth',
    backboneUrl: 'https://download.pytorch.org/models/vgg16-397923af.pth',
    lin: 'vgg.pth',
    linUrl: 'https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth',
  },
  alex: {
    backbone: 'alexnet-owt-7be5be79.pth',
    backboneUrl: 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth',
    lin: 'alex.pth',
    linUrl: 'https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth',
  },
};
export const LPIPS_WEIGHTS_ENV = 'IBQ_LPIPS_WEIGHTS';

export { MissingWeightsError };

function isFile(p: string): boolean {
  return existsSync(p) && statSync(p).isFile();
}

/**
 * The FID Inception weights: `path` (or a folder holding the file), else $IBQ_INCEPTION_WEIGHTS.
 * Throws MissingWeightsError naming the file, where it is published and how to pass it: `option` is how the
 * caller passes the path (the API option by default; the CLI gives its flag).
 */
export function resolveInceptionWeights(path?: string, option = 'weights.inception (a file or folder)'): string {
  const given = path ?? process.env[INCEPTION_WEIGHTS.env];
  const { file, url, env } = INCEPTION_WEIGHTS;
  if (given) {
    if (isFile(given)) return given;
    if (isFile(join(given, file))) return join(given, file);
  }
  const where = given ? `not found at ${given}` : `not given (pass ${option} or set ${env})`;
  throw new MissingWeightsError(
    `FID Inception weights ${file} ${where}; download it from ${url} (pytorch-fid's release). Nothing is downloaded automatically.`,
    file,
    url,
  );
}

/** The LPIPS files for `net` in `dir` ($IBQ_LPIPS_WEIGHTS when dir is absent), or undefined when either is absent. */
export function findLpipsFiles(net: LpipsNetName, dir?: string): { backbone: string; lin: string } | undefined {
  const d = dir ?? process.env[LPIPS_WEIGHTS_ENV];
  if (!d) return undefined;
  const w = LPIPS_WEIGHTS[net];
  const backbone = join(d, w.backbone);
  const lin = join(d, w.lin);
  return isFile(backbone) && isFile(lin) ? { backbone, lin } : undefined;
}

/** Whether FID Inception weights were named at all (a path given, or $IBQ_INCEPTION_WEIGHTS set). */
export function inceptionWeightsGiven(path?: string): boolean {
  return !!(path ?? process.env[INCEPTION_WEIGHTS.env]);
}

/** MissingWeightsError for LPIPS `net` (files looked for in `dir`; `option`: how the caller passes the folder). */
export function missingLpips(net: LpipsNetName, dir?: string, option = 'weights.lpips (a folder)'): MissingWeightsError {
  const w = LPIPS_WEIGHTS[net];
  const where = dir ? `in ${dir}` : `(pass ${option} or set ${LPIPS_WEIGHTS_ENV})`;
  return new MissingWeightsError(
    `LPIPS ${net} weights not found ${where}: it needs ${w.backbone} (torchvision, ${w.backboneUrl}) and ${w.lin} ` +
      `(LPIPS v0.1 lin layers, ${w.linUrl}). Nothing is downloaded automatically.`,
    `${w.backbone}, ${w.lin}`,
    `${w.backboneUrl} ${w.linUrl}`,
  );
}

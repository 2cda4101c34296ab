/** Evaluation: FID/IS Inception, LPIPS, metrics, evaluateTokenizer, evaluateSamples. */
export { FidInception, INCEPTION_NOTE, type InceptionFeatures, type InceptionInput } from './inception.js';
export { LPIPS } from './lpips.js';
export {
  clamp, clampAsync, codebookUsage, CodebookUsage, FeatureMoments, featureStats, frechetDistance, imageQuality, inceptionScore,
  psnr, ssim, type GaussianStats,
} from './metrics.js';
export { type EvalWeights } from './networks.js';
export {
  evaluateTokenizer, type EvaluableTokenizer, type EvaluateTokenizerOptions, type TokenizerMetrics,
} from './tokenizer_eval.js';
export { evaluateSamples, type EvaluateSamplesOptions, type SampleMetrics } from './samples_eval.js';
export {
  INCEPTION_WEIGHTS, LPIPS_WEIGHTS, LPIPS_WEIGHTS_ENV, MissingWeightsError, resolveInceptionWeights,
  type LpipsNetName,
} from './weights.js';

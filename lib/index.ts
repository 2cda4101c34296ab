/** ibq-native: IBQ tokenizer and autoregressive generator on libtorch. README.md gives the API; docs/architecture.md the design. */
export { info, setNumThreads, type Info } from './core/info.js';
export { tensor, Tensor, DTYPES, type DType, type TypedArray, type TensorOptions, type DataOptions } from './core/tensor.js';
export {
  loadCheckpoint, saveCheckpoint, loadSafetensors, saveSafetensors, readSafetensorsMetadata, loadNpy, saveNpy,
  loadNpz, saveNpz, Opaque, PyGlobal, PySlice, UnsupportedTensor, stripPrefix, addPrefix, detectPrefix, emaStateDict,
  plainConfig, loadWeightsFile, type WeightsFormat, type Checkpoint, type SaveCheckpointInput,
} from './io/index.js';
export {
  Transformer, checkSampleOptions, type SampleOptions, type TransformerConfig, type TransformerPreset, type TransformerLoadResult,
} from './transformer/transformer.js';
export { resolveTransformerConfig, transformerParameterCount, TRANSFORMER_PRESETS } from './transformer/config.js';
export {
  trainTransformer, type ARTrainConfig, type TrainTransformerOptions, type TrainTransformerResult, type TokenData,
} from './train/transformer.js';
export { tokensFromImages, tokensFromTensor, type TokenizerLike } from './transformer/tokens.js';
export { lrWdAnnealing } from './transformer/schedule.js';
export {
  createGenerator,
  Generator,
  GENERATE_REQUEST_KEYS,
  type GenerateRequest,
  type Generated,
  type GeneratorOptions,
} from './transformer/generator.js';
export { generate, toUint8Images, imageGrid, saveSamplesNpz, type TokenDecoder, type GenerateOptions } from './transformer/generate.js';
// ---- tokenizer area ----
export { readConfig, type IBQConfig, type ARTrainingSettings } from './config/read_config.js';
export { TokenizerBatcher, type BatchingOptions } from './tokenizer/batcher.js';
export { Tokenizer, SKIPPED_PREFIXES, type TokenizerForward, type TokenizerLoadResult, type FromCheckpointOptions } from './tokenizer/tokenizer.js';
export {
  IBQuantizer, VectorQuantizer, type IBQuantizerOptions, type IBQuantizerOutput, type VectorQuantizerOptions,
  type VectorQuantizerOutput, type LossAndGradsResult, type CreateOptions,
} from './tokenizer/quantizer.js';
export {
  tokenizerPreset, TOKENIZER_PRESETS, inferTokenizerConfig, resolveTokenizerConfig, type TokenizerPreset, type TokenizerConfig,
  type DDConfig, type ResolvedTokenizerConfig,
} from './tokenizer/config.js';
// the one declaration of each tokenizer-side config (generated from the C++ for_each_field lists)
export { DDCONFIG_FIELDS, IBQ_QUANTIZER_FIELDS, VQ_QUANTIZER_FIELDS } from './tokenizer/config_fields.js';
export { LOSS_CONFIG_FIELDS, TOKENIZER_TRAINER_FIELDS, type TokenizerTrainerFields } from './tokenizer/training_fields.js';
export { type FieldSpec, type FieldTable } from './config/fields.js';
export {
  decodeImage, loadImage, loadImages, decodeToPng, DEFAULT_MAX_PIXELS, defaultMaxPixels, type Crop, type ImageInput, type LoadImageOptions,
} from './data/images.js';
// ---- evaluation ----
export {
  evaluateTokenizer, evaluateSamples, FidInception, LPIPS, clamp, clampAsync, featureStats, FeatureMoments, frechetDistance,
  inceptionScore, imageQuality, psnr, ssim, codebookUsage, CodebookUsage, MissingWeightsError, INCEPTION_NOTE, LPIPS_WEIGHTS,
  LPIPS_WEIGHTS_ENV,
  type EvalWeights, type GaussianStats, type TokenizerMetrics, type SampleMetrics, type EvaluableTokenizer,
} from './eval/index.js';
// ---- tokenizer training ----
export {
  TokenizerTrainer, NonFiniteLossError, type TokenizerTrainerOptions, type SchedulerType, type PerceptualSource,
  type TrainerCheckpointInfo,
} from './tokenizer/trainer.js';
export { resolveLossConfig, type LossConfig, type ResolvedLossConfig } from './tokenizer/trainer_state.js';
export {
  trainTokenizer, type TokenizerTrainConfig, type TrainTokenizerOptions, type TrainTokenizerResult,
} from './train/tokenizer.js';
export {
  makeDataset, openDataset, type ImageBatchSource, type TokenizerDataInput, type TrainDataset,
} from './data/tokenizer_data.js';
export { expandBraces, expandShardSpec, readShard, shardKeys, SHARD_INDEX_FILE, type ShardSample } from './data/shards.js';
export { streamRun, ShuffleBuffer, type StreamPlan, type StreamSample } from './data/webdataset.js';
export { ShardDataset, DEFAULT_SHUFFLE_BUFFER, type ShardDatasetOptions } from './data/shard_dataset.js';
export { writeShards, type WriteShardsOptions } from './data/make_shards.js';
export { type BadImageInfo, type BadImageOptions } from './data/bad_images.js';
export { BatchBuffers, DecodePool, type DecodeOptions } from './data/workers.js';
export {
  TrainingDivergedError, LAST_CHECKPOINT, LOG_FILE, stepCheckpointName, type TrainLoopOptions, type TrainLoopResult, type TrainStepInfo,
} from './train/loop.js';
export { epochOrder } from './train/sampler.js';
export type { RunExtrasOptions } from './train/run.js';
export type { CheckpointCallbackSettings, TensorBoardSettings, LightningSettings } from './config/lightning.js';
export { listImages, IMAGE_EXTENSIONS, type ImageList } from './data/image_files.js';
export { readIdx, parseIdx, type IdxArray } from './data/idx.js';
// ---- distributed training (c10d) ----
export { ProcessGroup, DistributedError, type ProcessGroupOptions } from './distributed/process_group.js';
export { distributedEnv, type DistributedEnv } from './distributed/env.js';
export { type DistributedOption } from './distributed/context.js';
export { ERROR_CODES, IbqError, type ErrorCode } from './core/errors.js';
export { createServer, type ServeOptions, type IbqServer } from './serve/server.js';

/** ibq-native: IBQ tokenizer and autoregressive generator on libtorch. See DESIGN.md for the API contract. */
export { info, setNumThreads, type Info } from './info.js';
export { tensor, Tensor, DTYPES, type DType, type TypedArray, type TensorOptions, type DataOptions } from './tensor.js';
export {
  loadCheckpoint, saveCheckpoint, loadSafetensors, saveSafetensors, readSafetensorsMetadata, loadNpy, saveNpy,
  loadNpz, saveNpz, Opaque, PyGlobal, PySlice, UnsupportedTensor, stripPrefix, addPrefix, detectPrefix, emaStateDict,
  type Checkpoint, type SaveCheckpointInput,
} from './io/index.js';
export {
  Transformer, checkSampleOptions, type SampleOptions, type TransformerConfig, type TransformerPreset,
} from './transformer.js';
export { resolveTransformerConfig, transformerParameterCount, TRANSFORMER_PRESETS } from './transformer_config.js';
export { trainTransformer, type ARTrainConfig, type TrainTransformerOptions, type TrainStepLog } from './transformer_train.js';
export { lrWdAnnealing } from './transformer_schedule.js';
export { generate, toUint8Images, type TokenDecoder } from './generate.js';

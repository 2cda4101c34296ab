/** ibq-native: IBQ tokenizer and autoregressive generator on libtorch. See DESIGN.md for the API contract. */
export { info, setNumThreads, type Info } from './info.js';
export { tensor, Tensor, DTYPES, type DType, type TypedArray, type TensorOptions, type DataOptions } from './tensor.js';
export {
  loadCheckpoint, saveCheckpoint, loadSafetensors, saveSafetensors, readSafetensorsMetadata, loadNpy, saveNpy,
  loadNpz, saveNpz, Opaque, PyGlobal, PySlice, UnsupportedTensor, stripPrefix, addPrefix, detectPrefix, emaStateDict,
  type Checkpoint, type SaveCheckpointInput,
} from './io/index.js';

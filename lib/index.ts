/** ibq-native: IBQ tokenizer and autoregressive generator on libtorch. See DESIGN.md for the API contract. */
export { info, setNumThreads, type Info } from './info.js';
export { tensor, Tensor, DTYPES, type DType, type TypedArray, type TensorOptions, type DataOptions } from './tensor.js';
export {
  loadCheckpoint, loadSafetensors, saveSafetensors, readSafetensorsMetadata, Opaque, PyGlobal, PySlice,
  UnsupportedTensor, type Checkpoint,
} from './io/index.js';

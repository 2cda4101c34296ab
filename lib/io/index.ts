/** Checkpoints and files: torch.save / Lightning checkpoints, safetensors, numpy. */
export { loadCheckpoint, type Checkpoint } from './checkpoint.js';
export { loadSafetensors, saveSafetensors, readSafetensorsMetadata } from './safetensors.js';
export { Opaque, PyGlobal, PySlice } from './pickle_globals.js';
export { UnsupportedTensor } from './unsupported.js';

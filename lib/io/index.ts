/** Checkpoints and files: torch.save / Lightning checkpoints, safetensors, numpy, state-dict helpers. */
export { loadCheckpoint, type Checkpoint } from './checkpoint.js';
export { saveCheckpoint, type SaveCheckpointInput } from './save.js';
export { loadSafetensors, saveSafetensors, readSafetensorsMetadata } from './safetensors.js';
export { loadNpy, saveNpy, loadNpz, saveNpz } from './npy.js';
export { Opaque, PyGlobal, PySlice } from './pickle_globals.js';
export { UnsupportedTensor } from './unsupported.js';
export {
  stripPrefix, addPrefix, detectPrefix, emaStateDict, isEmaBookkeeping, EMA_PREFIX, stripWrapperPrefixes, WRAPPER_PREFIXES,
} from './state_dict.js';
export { plainConfig } from './plain_config.js';
export { loadWeightsFile, weightsFormat, type WeightsFormat } from './weights_file.js';

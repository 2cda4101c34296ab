/**
 * loadWeightsFile: one loader for every "weights file" argument (Tokenizer/Transformer.fromCheckpoint, the
 * CLI's --ckpt/--tokenizer/--ar, `ibq ckpt`): a safetensors file or a torch.save / Lightning checkpoint,
 * told apart by the file's first bytes, never by its name. safetensors: an 8-byte little-endian header
 * length N (2 <= N <= file size - 8) followed by '{'; a torch zip archive starts with 'PK', a legacy torch
 * file with the pickle protocol byte 0x80.
 */
import { loadCheckpoint, type Checkpoint } from './checkpoint.js';
import { fileSize, readRange } from './files.js';
import { loadSafetensors, readSafetensorsMetadata } from './safetensors.js';

export type WeightsFormat = 'safetensors' | 'torch';

/** Whether the file's bytes start like a safetensors file. @throws Error naming the path when it is not a readable file */
export async function weightsFormat(path: string): Promise<WeightsFormat> {
  const size = await fileSize(path);
  if (size < 10) return 'torch';
  const head = await readRange(path, 0, 9);
  const n = head.readBigUInt64LE(0);
  return n >= 2n && n <= BigInt(size - 8) && head[8] === 0x7b ? 'safetensors' : 'torch';
}

/**
 * The state dict and meta of a weights file and the format found (safetensors: meta holds hyper_parameters
 * when its metadata has them, as `ibq ckpt convert` writes them; else {}).
 * @throws Error naming the path when the file is missing or malformed (see loadCheckpoint / loadSafetensors)
 */
export async function loadWeightsFile(path: string): Promise<Checkpoint & { format: WeightsFormat }> {
  const format = await weightsFormat(path);
  if (format === 'safetensors') {
    // hyper_parameters: the config `ibq ckpt convert` stores in the metadata (JSON)
    const md = await readSafetensorsMetadata(path);
    let meta: Record<string, unknown> = {};
    if (md.hyper_parameters) {
      try {
        meta = { hyper_parameters: JSON.parse(md.hyper_parameters) };
      } catch {
        /* not ours: no config */
      }
    }
    return { stateDict: await loadSafetensors(path), meta, format };
  }
  return { ...(await loadCheckpoint(path)), format };
}

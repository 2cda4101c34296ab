/** Types of native/bindings/{tokenizer,ibq_quantizer,vector_quantizer}.cpp. */
import type { JobOptions, ModuleHandleNative, TensorHandle } from './handles.js';

/** Options of the tokenizer/quantizer calls: run under autocast with this dtype (CPU: bfloat16 only). */
export interface AutocastOptions {
  autocast?: 'bfloat16' | 'float16';
}
export type TokenizerOutputName =
  | 'h' | 'z_q' | 'indices' | 'xrec' | 'quant_loss' | 'sample_entropy' | 'avg_entropy' | 'entropy_loss';
export interface TokenizerHandleNative extends ModuleHandleNative {
  forward(x: TensorHandle, opts?: AutocastOptions & JobOptions): Promise<Record<TokenizerOutputName, TensorHandle>>;
  encode(x: TensorHandle, opts?: AutocastOptions & JobOptions): Promise<{ indices: TensorHandle; z_q: TensorHandle }>;
  /** float32 [B, C, H, W]; samplePixels: uint8 [B, H, W, C] by the official sample script's conversion, in the same job. */
  decode(indices: TensorHandle, opts?: AutocastOptions & JobOptions & { samplePixels?: boolean }): Promise<TensorHandle>;
}
export interface QuantizerHandleNative<Out extends string> extends ModuleHandleNative {
  forward(z: TensorHandle, opts?: AutocastOptions): Promise<Record<Out, TensorHandle>>;
  lossAndGrads(
    z: TensorHandle,
    gradOut: TensorHandle,
    opts?: AutocastOptions & { quant_loss_weight?: number; entropy_loss_weight?: number },
  ): Promise<{ outputs: Record<Out | 'total', TensorHandle>; grads: [string, TensorHandle][] }>;
  getCodebookEntry(indices: TensorHandle): Promise<TensorHandle>;
}
export type IBQOutputName = 'z_q' | 'quant_loss' | 'sample_entropy' | 'avg_entropy' | 'entropy_loss' | 'indices';
export type VQOutputName = 'z_q' | 'loss' | 'indices';

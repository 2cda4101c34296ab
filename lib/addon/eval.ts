/** Types of native/bindings/{fid_inception,lpips,metrics}.cpp. */
import type { JobOptions, ModuleHandleNative, TensorHandle } from './handles.js';

export interface GaussianStatsNative {
  mu: TensorHandle;
  sigma: TensorHandle;
  n?: number;
}
export interface FidInceptionHandleNative extends ModuleHandleNative {
  forward(
    images: TensorHandle,
    opts?: JobOptions & { input?: 'unit' | 'symmetric' | 'uint8'; batchSize?: number },
  ): Promise<{ pool3: TensorHandle; logits: TensorHandle; logitsUnbiased: TensorHandle }>;
}
export interface LpipsHandleNative extends ModuleHandleNative {
  forward(in0: TensorHandle, in1: TensorHandle, normalize: boolean, opts?: JobOptions): Promise<TensorHandle>;
  loadOfficial(entries: [string, TensorHandle][]): Promise<void>;
  loadTorchvision(backbone: [string, TensorHandle][], lin: [string, TensorHandle][]): Promise<void>;
  net(): 'vgg' | 'alex';
}

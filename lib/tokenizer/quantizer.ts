/**
 * The standalone quantizers: IBQuantizer (official `IndexPropagationQuantize`, IBQ paper arXiv 2412.02692
 * Sec. 3) and VectorQuantizer (taming-transformers `VectorQuantizer2`), with their codebook as the state-dict
 * key `embedding.weight` [n_embed, embed_dim]. Each call is one native job on the model's queue.
 */
import { checkNumber } from '../core/errors.js';
import { fieldDefault, resolveFields } from '../config/fields.js';
import { Module } from '../core/module.js';
import {
  native,
  type AutocastOptions,
  type IBQOutputName,
  type QuantizerHandleNative,
  type TensorHandle,
  type VQOutputName,
} from '../native.js';
import { Tensor, tensorArg, wrap, wrapAll } from '../core/tensor.js';
import { checkAutocast } from '../core/autocast.js';
import type { QuantizerChunk } from './config_types.js';
import {
  IBQ_QUANTIZER_FIELDS, VQ_QUANTIZER_FIELDS, type IBQuantizerOptions, type ResolvedIBQuantizerOptions,
  type VectorQuantizerOptions,
} from './config_fields.js';

export type { IBQuantizerOptions, VectorQuantizerOptions } from './config_fields.js';

export interface CreateOptions {
  /** 'cpu' (default), 'cuda', 'cuda:N'. */
  device?: string;
  /** Seeds torch's generator before the random initialisation. */
  seed?: number;
}

/** forward() of IBQuantizer: every tensor float32 unless noted (z_q is bfloat16 under autocast). */
export interface IBQuantizerOutput {
  /** [B, D, H, W]: straight-through one-hot @ codebook. */
  z_q: Tensor;
  /** 0-d: mean((z_q - z)^2) + mean((sg(z_q_hard) - z)^2) + beta * mean((z_q_hard - sg(z))^2). */
  quant_loss: Tensor;
  /** 0-d: mean per-position entropy of softmax(logits / T) (always float32). */
  sample_entropy: Tensor;
  /** 0-d: entropy of the mean distribution (always float32). */
  avg_entropy: Tensor;
  /** 0-d: sample_minimization_weight * sample_entropy - batch_maximization_weight * avg_entropy. */
  entropy_loss: Tensor;
  /** int64 [B, H, W]. */
  indices: Tensor;
}

export interface LossAndGradsResult<O> {
  outputs: O & { total: Tensor };
  /** 'z' and 'embedding.weight'. */
  grads: Map<'z' | 'embedding.weight', Tensor>;
}

abstract class Quantizer<Out extends string, O> extends Module<QuantizerHandleNative<Out>> {
  /** z [B, embed_dim, H, W] (float). @throws RangeError (rejected) for another shape. */
  async forward(z: Tensor, opts?: AutocastOptions): Promise<O> {
    return wrapAll(await this.native.forward(tensorArg(z, 'z'), checkAutocast(opts, 'opts', this.device))) as O;
  }
  /** Codebook rows for int64 indices [B, h, w] -> [B, embed_dim, h, w]; RangeError for indices out of range. */
  async getCodebookEntry(indices: Tensor): Promise<Tensor> {
    return wrap(await this.native.getCodebookEntry(tensorArg(indices, 'indices')));
  }
  protected async grads(
    z: Tensor,
    gradOut: Tensor,
    opts: AutocastOptions & { quant_loss_weight?: number; entropy_loss_weight?: number },
  ): Promise<LossAndGradsResult<O>> {
    const r = await this.native.lossAndGrads(tensorArg(z, 'z'), tensorArg(gradOut, 'gradOut'), opts);
    return {
      outputs: wrapAll(r.outputs) as O & { total: Tensor },
      grads: new Map(r.grads.map(([k, h]) => [k as 'z' | 'embedding.weight', wrap(h)])),
    };
  }
}

export class IBQuantizer extends Quantizer<IBQOutputName, IBQuantizerOutput> {
  readonly options: Required<IBQuantizerOptions>;

  constructor(options: IBQuantizerOptions, create: CreateOptions = {}) {
    const r = resolveFields<ResolvedIBQuantizerOptions>(IBQ_QUANTIZER_FIELDS, options, 'options', {
      what: 'the IBQuantizer options', unknown: 'error',
    });
    const o: Required<IBQuantizerOptions> = {
      ...r, quantizer_chunk: r.quantizer_chunk ?? (fieldDefault(IBQ_QUANTIZER_FIELDS.quantizer_chunk) as QuantizerChunk),
    };
    super(new native.IBQuantizerHandle(o, create.device, create.seed));
    this.options = o;
  }

  /**
   * Gradients of sum(z_q * gradOut) + quant_loss_weight * quant_loss + entropy_loss_weight * entropy_loss
   * (defaults 1.0 and 0.05, the official lossconfig) with respect to z and embedding.weight; nothing is updated.
   */
  lossAndGrads(
    z: Tensor,
    gradOut: Tensor,
    opts: AutocastOptions & { quant_loss_weight?: number; entropy_loss_weight?: number } = {},
  ): Promise<LossAndGradsResult<IBQuantizerOutput>> {
    const w = {
      ...checkAutocast(opts, 'opts', this.device),
      quant_loss_weight: checkNumber(opts.quant_loss_weight ?? 1.0, 'opts.quant_loss_weight'),
      entropy_loss_weight: checkNumber(opts.entropy_loss_weight ?? 0.05, 'opts.entropy_loss_weight'),
    };
    return this.grads(z, gradOut, w);
  }
}

export interface VectorQuantizerOutput {
  /** [B, D, H, W]: z + sg(E[idx] - z). */
  z_q: Tensor;
  /** 0-d. */
  loss: Tensor;
  /** int64 [B, H, W]. */
  indices: Tensor;
}

export class VectorQuantizer extends Quantizer<VQOutputName, VectorQuantizerOutput> {
  readonly options: Required<VectorQuantizerOptions>;

  constructor(options: VectorQuantizerOptions, create: CreateOptions = {}) {
    const o = resolveFields<Required<VectorQuantizerOptions>>(VQ_QUANTIZER_FIELDS, options, 'options', {
      what: 'the VectorQuantizer options', unknown: 'error',
    });
    super(new native.VectorQuantizerHandle(o, create.device, create.seed));
    this.options = o;
  }

  /** Gradients of sum(z_q * gradOut) + loss with respect to z and embedding.weight; nothing is updated. */
  lossAndGrads(z: Tensor, gradOut: Tensor, opts: AutocastOptions = {}): Promise<LossAndGradsResult<VectorQuantizerOutput>> {
    return this.grads(z, gradOut, checkAutocast(opts, 'opts', this.device));
  }
}

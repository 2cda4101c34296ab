/**
 * The tokenizer config's types: the official `model.init_args` of a tokenizer YAML, made of the declared parts
 * (lib/tokenizer/config_fields.ts, training_fields.ts). Types only (lib/config reads them from YAML files, lib/tokenizer/config.ts
 * resolves them).
 */
import type { DDConfig, IBQuantizerOptions, ResolvedDDConfig, ResolvedIBQuantizerOptions } from './config_fields.js';
import type { LossConfig } from './training_fields.js';

/** IBQuantizerOptions.quantizer_chunk: 'auto' (default), 'dense' or positions per block. */
export type QuantizerChunk = NonNullable<IBQuantizerOptions['quantizer_chunk']>;

/** The tokenizer config's lossconfig ({ target, params }: the training loss; not used by the tokenizer itself). */
export interface TokenizerLossconfig {
  target?: string;
  params?: LossConfig | Record<string, unknown>;
  [k: string]: unknown;
}

/**
 * The official `model.init_args` of a tokenizer YAML: ddconfig, the IBQ quantizer fields (n_embed, embed_dim,
 * beta, use_entropy_loss, ...), l2_normalize, lossconfig; the other official init_args (learning_rate, use_ema,
 * lr_drop_epoch, ...; they vary with the official model class) are kept as given.
 */
export interface TokenizerConfig extends IBQuantizerOptions {
  ddconfig: DDConfig;
  /** The official VQModel's VectorQuantizer2 option (the IBQ quantizer does not use it). Default: false. */
  l2_normalize?: boolean;
  lossconfig?: TokenizerLossconfig;
  [k: string]: unknown;
}

/** A config with every default filled in (what a Tokenizer holds). */
export interface ResolvedTokenizerConfig extends ResolvedIBQuantizerOptions {
  ddconfig: ResolvedDDConfig;
  l2_normalize: boolean;
  lossconfig?: TokenizerLossconfig;
  [k: string]: unknown;
}

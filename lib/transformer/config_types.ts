/**
 * TransformerConfig: the official `transformer_config.params` of an AR YAML (GPT.__init__ arguments of
 * src/IBQ/modules/transformer/llama.py). A type only (lib/config reads it from YAML files, lib/transformer
 * resolves it); the field list at run time is the native one (native/ibq/transformer/transformer.h, for_each_field).
 */
export interface TransformerConfig {
  vocab_size: number;
  /** Number of image tokens (a square: the 2D RoPE grid). */
  block_size: number;
  n_layer: number;
  n_head: number;
  n_embd: number;
  /** Must equal n_embd (the condition is the class embedding). Default n_embd. */
  cond_dim?: number;
  class_num: number;
  cls_token_num?: number;
  rope_base?: number;
  norm_eps?: number;
  multiple_of?: number;
  n_kv_head?: number | null;
  shared_aln?: boolean;
  ffn_dim_multiplier?: number | null;
  resid_dropout_p?: number;
  ffn_dropout_p?: number;
  attn_dropout_p?: number;
  token_drop?: number;
  drop_path_rate?: number;
  /** LabelEmbedder dropout; > 0 adds the null-class row used by guidance. Default 0.1. */
  class_dropout_prob?: number;
  /** Init scale of the AdaLN gammas. Default 1e-3. */
  alng?: number;
  /** Init std (the official keyword keeps its spelling). Default 0.02. */
  initalizer_range?: number;
}

export type TransformerPreset = 'B' | 'L' | 'XL' | 'XXL';

/**
 * TransformerConfig: the official `transformer_config.params` of an AR YAML (GPT.__init__ arguments of
 * src/IBQ/modules/transformer/llama.py). Types only (lib/config reads it from YAML files, lib/transformer
 * resolves it); declared once, in native/ibq/transformer/transformer.h (for_each_field), generated into config_fields.ts.
 */
export type { TransformerConfig, ResolvedTransformerConfig } from './config_fields.js';

export type TransformerPreset = 'B' | 'L' | 'XL' | 'XXL';

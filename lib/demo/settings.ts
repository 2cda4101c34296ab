/**
 * The demo's settings: a small IBQ tokenizer (official init_args layout: ddconfig, n_embed, embed_dim, entropy
 * loss, lossconfig of VQLPIPSWithDiscriminator with the discriminator and LeCAM on) and a small class-conditional
 * Llama-AdaLN transformer (official transformer_config.params), tuned to finish on two CPU cores in a few
 * minutes. `--max-steps` caps both training stages.
 */
import type { ResolvedDDConfig, ResolvedIBQuantizerOptions } from '../tokenizer/config_fields.js';
import type { LossConfig, ResolvedTokenizerTrainerFields } from '../tokenizer/training_fields.js';
import type { ResolvedTransformerConfig } from '../transformer/config_fields.js';

export interface DemoSettings {
  imageSize: number;
  seed: number;
  tokenizer: {
    /** Official tokenizer init_args (ddconfig, n_embed, embed_dim, learning_rate, lossconfig, ...). */
    config: Omit<ResolvedIBQuantizerOptions, 'quantizer_chunk'> &
      Pick<ResolvedTokenizerTrainerFields, 'learning_rate' | 'scheduler_type' | 'use_ema'> & {
        ddconfig: ResolvedDDConfig;
        warmup_epochs: number;
        lossconfig: { target: string; params: LossConfig };
      };
    steps: number;
    batchSize: number;
  };
  transformer: {
    /** Official transformer_config.params (vocab_size, block_size and class_num are filled in from the data). */
    config: Pick<
      ResolvedTransformerConfig,
      'n_layer' | 'n_head' | 'n_embd' | 'multiple_of' | 'class_dropout_prob' | 'token_drop' | 'resid_dropout_p' | 'ffn_dropout_p'
    >;
    learning_rate: number;
    weight_decay: number;
    /** Warm-up epochs (official wp). */
    wp: number;
    steps: number;
    batchSize: number;
  };
  sampling: { perClass: number; cfgScale: number; temperature: number; topK: number; topP: number; seed: number };
}

/** The reference settings (README figures). */
export function defaultSettings(): DemoSettings {
  return {
    imageSize: 32,
    seed: 0,
    tokenizer: {
      config: {
        ddconfig: {
          double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
          num_res_blocks: 1, attn_resolutions: [], dropout: 0.0,
        },
        n_embed: 256,
        embed_dim: 16,
        beta: 0.25,
        use_entropy_loss: true,
        entropy_temperature: 0.01,
        sample_minimization_weight: 1.0,
        batch_maximization_weight: 1.0,
        learning_rate: 1e-3,
        scheduler_type: 'linear-warmup_cosine-decay',
        warmup_epochs: 0,
        use_ema: false,
        lossconfig: {
          target: 'src.IBQ.modules.losses.vqperceptual.VQLPIPSWithDiscriminator',
          params: {
            disc_conditional: false, disc_in_channels: 3, disc_start: 0, disc_weight: 0.4, disc_ndf: 32, disc_num_layers: 2,
            quant_loss_weight: 1.0, entropy_loss_weight: 0.05, gen_loss_weight: 0.1, lecam_loss_weight: 0.05,
            perceptual_weight: 0.0,
          },
        },
      },
      steps: 450,
      batchSize: 32,
    },
    transformer: {
      config: {
        n_layer: 4, n_head: 3, n_embd: 96, multiple_of: 32, class_dropout_prob: 0.1, token_drop: 0.0,
        resid_dropout_p: 0.0, ffn_dropout_p: 0.0,
      },
      learning_rate: 2e-3,
      weight_decay: 0.05,
      wp: 0.1,
      steps: 300,
      batchSize: 32,
    },
    sampling: { perClass: 10, cfgScale: 2.0, temperature: 0.7, topK: 0, topP: 1.0, seed: 1 },
  };
}

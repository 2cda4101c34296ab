/** Small class-folder image sets for the WebDataset tests (JPEG/PNG files of distinct colours and sizes, written with sharp) and their tokenizer YAML. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import sharp from 'sharp';

/**
 * Writes `perClass` images into each of `classes` sub-folders of `root` (every third one a PNG, the others JPEG;
 * sizes vary) and returns their paths by class.
 */
export async function writeClassFolders(root: string, classes: string[], perClass: number): Promise<string[][]> {
  const out: string[][] = [];
  for (const [c, name] of classes.entries()) {
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    const paths: string[] = [];
    for (let i = 0; i < perClass; i++) {
      const w = 40 + ((i * 7) % 17);
      const h = 30 + ((i * 5) % 13);
      const px = Buffer.alloc(w * h * 3);
      for (let p = 0; p < w * h; p++) {
        px[p * 3] = (c * 80 + i * 9) & 255;
        px[p * 3 + 1] = (p * 3 + i) & 255;
        px[p * 3 + 2] = (p >> 4) & 255;
      }
      const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
      const png = i % 3 === 2;
      const path = join(dir, `img.${i}.${png ? 'png' : 'jpg'}`); // a dot in the stem: keys must not keep it
      writeFileSync(path, png ? await img.png().toBuffer() : await img.jpeg().toBuffer());
      paths.push(path);
    }
    out.push(paths);
  }
  return out;
}

/**
 * A tokenizer training YAML (official layout) small enough for the data tests: 16 px, ch 32, ch_mult [1, 2], 32 codes,
 * no LPIPS; `extra` lines are appended to model.init_args (indented by 4).
 */
export function tinyTokenizerYaml(extra = ''): string {
  return `
model:
  init_args:
    ddconfig: {double_z: false, z_channels: 16, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0}
    lossconfig:
      target: src.IBQ.modules.losses.vqperceptual.VQLPIPSWithDiscriminator
      params: {disc_start: 0, disc_weight: 0.4, quant_loss_weight: 1.0, entropy_loss_weight: 0.05, gen_loss_weight: 0.1, lecam_loss_weight: 0.05, perceptual_weight: 0.0, disc_num_layers: 1}
    n_embed: 32
    embed_dim: 8
    learning_rate: 1.0e-3
${extra}`;
}

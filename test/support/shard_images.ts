/** Small class-folder image sets for the WebDataset tests: JPEG/PNG files of distinct colours and sizes, written with sharp. */
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

/**
 * The demo's two figures (PNG, sharp): reconstructions.png (a row of held-out originals above the row of
 * their reconstructions) and samples.png (one row per class, its name written on the left through an SVG
 * overlay). Images are uint8 HWC [n, S, S, 3] as generate() returns them; thumbnails are enlarged by `scale`
 * (nearest neighbour) so 32-pixel images stay visible.
 */
import sharp, { type OverlayOptions } from 'sharp';

import { imageGrid, tensor, toUint8Images } from '../index.js';

const PAD = 2;

/** Font size of the row labels for rows `rowHeight` pixels high. */
const fontSize = (rowHeight: number) => Math.max(10, Math.min(16, Math.round(rowHeight / 3)));
/** Width of a label column fitting `labels` (DejaVu Sans averages ~0.62 em per character). */
const labelColumn = (labels: string[], rowHeight: number) => Math.ceil(16 + 0.62 * fontSize(rowHeight) * Math.max(...labels.map((l) => l.length)));

/** uint8 [n, S, S, 3] images -> one PNG row, each image enlarged `scale` times. */
async function row(images: Uint8Array, n: number, size: number, scale: number): Promise<Buffer> {
  const grid = await imageGrid(tensor(images, [n, size, size, 3], { dtype: 'uint8' }), { cols: n, pad: 0 });
  return sharp(grid).resize({ width: n * size * scale, height: size * scale, kernel: 'nearest' }).png().toBuffer();
}

/** Stacks PNG rows of equal width with PAD pixels between and around them, and a label column on the left when `labels` are given. */
async function stack(rows: Buffer[], rowWidth: number, rowHeight: number, labels?: string[]): Promise<Buffer> {
  const labelWidth = labels ? labelColumn(labels, rowHeight) : 0;
  const width = labelWidth + rowWidth + 2 * PAD;
  const height = rows.length * (rowHeight + PAD) + PAD;
  const layers: OverlayOptions[] = rows.map((input, i) => ({ input, left: labelWidth + PAD, top: PAD + i * (rowHeight + PAD) }));
  if (labels) {
    const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const fs = fontSize(rowHeight);
    const texts = labels.map((l, i) => {
      const y = PAD + i * (rowHeight + PAD) + rowHeight / 2 + fs / 3;
      return `<text x="${labelWidth - 6}" y="${y}" text-anchor="end" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="${fs}" fill="#ffffff">${esc(l)}</text>`;
    });
    layers.push({ input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${texts.join('')}</svg>`), left: 0, top: 0 });
  }
  return sharp({ create: { width, height, channels: 3, background: '#000000' } }).composite(layers).png().toBuffer();
}

/**
 * reconstructions.png: originals (float CHW [n, 3, S, S] in [-1, 1]) above their reconstructions (same
 * layout), converted to uint8 as generate() converts samples.
 */
export async function reconstructionFigure(originals: Float32Array, reconstructions: Float32Array, n: number, size: number, scale = 2): Promise<Buffer> {
  const shape = [n, 3, size, size];
  const a = toUint8Images(originals, shape).data;
  const b = toUint8Images(reconstructions, shape).data;
  const rows = [await row(a, n, size, scale), await row(b, n, size, scale)];
  return stack(rows, n * size * scale, size * scale, ['original', 'reconstruction']);
}

/** samples.png: `perClass` samples of each class (uint8 [classes * perClass, S, S, 3], class-major), one labelled row per class. */
export async function samplesFigure(images: Uint8Array, classNames: string[], perClass: number, size: number, scale = 2): Promise<Buffer> {
  const per = perClass * size * size * 3;
  const rows: Buffer[] = [];
  for (let c = 0; c < classNames.length; c++) rows.push(await row(images.subarray(c * per, (c + 1) * per), perClass, size, scale));
  return stack(rows, perClass * size * scale, size * scale, classNames);
}

import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';

import { Tokenizer, imageQuality, loadImage, loadNpy, psnr, tensor } from '../../dist/index.js';
import { ints } from '../support/compare.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';
import { run } from '../support/run.js';

const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
const photo = (name: string) => join(SKIMAGE, name);
const HAVE_PHOTOS = existsSync(photo('astronaut.png'));
const root = new URL('../..', import.meta.url).pathname;

describe.skipIf(!HAVE_PHOTOS)('image loading (sharp)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-images-'));

  it('resizes the shorter side and centre-crops to [-1, 1] RGB', async () => {
    const x = await loadImage(photo('coffee.png'), 64); // 600 x 400 RGB
    expect(x.length).toBe(3 * 64 * 64);
    let lo = Infinity, hi = -Infinity;
    for (const v of x) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
    expect(lo).toBeGreaterThanOrEqual(-1);
    expect(hi).toBeLessThanOrEqual(1);
    expect(hi - lo).toBeGreaterThan(1); // a real photo, not a flat image
    // shorter side to the size, then the centre: a 300 x 200 image with red (10 px) | green | blue (10 px) bands
    // loads as pure green; the same rotated (200 x 300, bands top to bottom) too
    const w = 300, h = 200, px = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) px[(y * w + xx) * 3 + (xx < 10 ? 0 : xx < 290 ? 1 : 2)] = 255;
    }
    const wide = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    const tall = await sharp(wide).rotate(90).png().toBuffer();
    for (const img of [wide, tall]) {
      const g = await loadImage(img, 20);
      const hw = 20 * 20;
      for (let p = 0; p < hw; p++) {
        expect(g[p]).toBe(-1); // red
        expect(g[hw + p]).toBe(1); // green
        expect(g[2 * hw + p]).toBe(-1); // blue
      }
    }
  });

  it('drops PNG alpha without compositing (PIL convert("RGB")), reads the type from the bytes', async () => {
    const { data, info } = await sharp(photo('astronaut.png')).raw().toBuffer({ resolveWithObject: true });
    const rgba = Buffer.alloc(info.width * info.height * 4);
    for (let p = 0; p < info.width * info.height; p++) {
      data.copy(rgba, p * 4, p * 3, p * 3 + 3);
      rgba[p * 4 + 3] = p % 251; // varying transparency
    }
    const rgbaPng = join(dir, 'rgba.png');
    await sharp(rgba, { raw: { width: info.width, height: info.height, channels: 4 } }).png().toFile(rgbaPng);
    expect((await sharp(rgbaPng).metadata()).channels).toBe(4);
    const a = await loadImage(rgbaPng, 64), b = await loadImage(photo('astronaut.png'), 64);
    expect(Array.from(a)).toEqual(Array.from(b));
    const misnamed = join(dir, 'really-a-png.jpg');
    copyFileSync(photo('astronaut.png'), misnamed);
    expect(Array.from(await loadImage(misnamed, 64))).toEqual(Array.from(b));
  });

  it('expands greyscale to three equal channels and converts CMYK JPEG to RGB', async () => {
    const grey = join(dir, 'grey.jpg');
    await sharp(photo('chelsea.png')).toColourspace('b-w').jpeg().toFile(grey);
    expect((await sharp(grey).metadata()).channels).toBe(1);
    const g = await loadImage(grey, 32);
    const hw = 32 * 32;
    for (let p = 0; p < hw; p++) {
      expect(g[p]).toBe(g[hw + p]);
      expect(g[p]).toBe(g[2 * hw + p]);
    }
    const cmyk = join(dir, 'cmyk.jpg');
    await sharp(photo('astronaut.png')).toColourspace('cmyk').jpeg({ quality: 95 }).toFile(cmyk);
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    const c = await loadImage(cmyk, 64), rgb = await loadImage(photo('astronaut.png'), 64);
    let mad = 0;
    for (let i = 0; i < c.length; i++) mad += Math.abs(c[i]! - rgb[i]!);
    expect(mad / c.length).toBeLessThan(0.1); // the same picture after a CMYK round trip
  });

  it('rejects files that are not images, naming them', async () => {
    const txt = join(dir, 'notes.png');
    writeFileSync(txt, 'not an image');
    await expect(loadImage(txt, 64)).rejects.toThrow(/notes\.png: not a decodable image/);
    await expect(loadImage(join(dir, 'missing.png'), 64)).rejects.toThrow(/missing\.png/);
  });
});

describe.skipIf(!HAVE_FIXTURES || !HAVE_PHOTOS)('encodeImages / decodeImages with the fixture tokenizer', () => {
  let tok: Tokenizer;
  const photos = ['astronaut.png', 'coffee.png', 'chelsea.png', 'camera.png' /* greyscale */].map(photo);
  beforeAll(async () => {
    tok = (await Tokenizer.fromCheckpoint(fixture('tokenizer', 'model.ckpt'))).eval();
  });

  it('tokenizes real photos deterministically and decodes them to PNGs', async () => {
    const a = await tok.encodeImages(photos, { imageSize: 64 });
    expect(a.indices.shape).toEqual([4, 32, 32]);
    expect(a.indices.dtype).toBe('int64');
    expect(a.images.shape).toEqual([4, 3, 64, 64]);
    const idx = ints(a.indices);
    expect(Math.min(...idx)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...idx)).toBeLessThan(128);
    expect(new Set(idx).size).toBeGreaterThan(4);
    const b = await tok.encodeImages(photos.map((p) => readFileSync(p)), { imageSize: 64 });
    expect(ints(b.indices)).toEqual(idx);
    const pngs = await tok.decodeImages(a.indices);
    expect(pngs).toHaveLength(4);
    for (const png of pngs) {
      const m = await sharp(png).metadata();
      expect([m.format, m.width, m.height, m.channels]).toEqual(['png', 64, 64, 3]);
    }
    const again = await tok.decodeImages(a.indices);
    expect(again.map((p) => p.toString('base64'))).toEqual(pngs.map((p) => p.toString('base64')));
    await expect(tok.encodeImages(photos, { imageSize: 63 })).rejects.toThrow(/63 is not divisible by 2.*64/);
  });

  it('psnr is the one official evaluation PSNR: uint8-truncated images, per image, then the mean', async () => {
    // 8x8 images in [0, 1]: 0.1 -> uint8 trunc(25.5) = 25, so the first pair differs by 25/255 everywhere
    const n = 64;
    const x = tensor(new Float32Array(2 * 3 * n).fill(0).fill(1, 3 * n), [2, 3, 8, 8]);
    const y = tensor(new Float32Array(2 * 3 * n).fill(0.1).fill(1, 3 * n), [2, 3, 8, 8]);
    const first = 10 * Math.log10(1 / (25 / 255) ** 2);
    const q = await imageQuality(x, y);
    expect(q.psnr[0]).toBeCloseTo(first, 6);
    expect(q.psnr[1]).toBe(Infinity);
    expect(await psnr(x.to('cpu'), x)).toBe(Infinity);
    const one = tensor(new Float32Array(3 * n).fill(0), [1, 3, 8, 8]);
    expect(await psnr(one, tensor(new Float32Array(3 * n).fill(0.1), [1, 3, 8, 8]))).toBeCloseTo(first, 6);
    await expect(psnr(x, tensor(new Float32Array(4), [1, 1, 2, 2]))).rejects.toThrow();
  });

  it('CLI: ibq reconstruct writes original|reconstruction PNGs and prints PSNR; ibq tokenize writes .npy', async () => {
    const out = mkdtempSync(join(tmpdir(), 'ibq-cli-'));
    const ckpt = fixture('tokenizer', 'model.ckpt');
    const bin = join(root, 'bin', 'ibq.js');
    const r = await run('node', [bin, 'reconstruct', '--ckpt', ckpt, '--image-size', '64', photos[0]!, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^image size 64 \(--image-size; the tokenizer was trained at 32\)$/m);
    const m = /astronaut\.png\tPSNR ([\d.]+) dB/.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(5);
    const meta = await sharp(join(out, 'astronaut.png')).metadata();
    expect([meta.width, meta.height]).toEqual([128, 64]);
    const npy = join(out, 'tokens.npy');
    const t = await run('node', [bin, 'tokenize', '--ckpt', ckpt, '--image-size', '64', ...photos.slice(0, 2), '--out', npy]);
    expect(t.status, t.stderr).toBe(0);
    const saved = await loadNpy(npy);
    expect(saved.shape).toEqual([2, 32, 32]);
    const direct = await tok.encodeImages(photos.slice(0, 2), { imageSize: 64 });
    expect(ints(saved)).toEqual(ints(direct.indices));
    const bad = await run('node', [bin, 'reconstruct', '--ckpt', ckpt, '--image-size', '63', photos[0]!, '--out', out]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/63 is not divisible by 2/);
  });
});

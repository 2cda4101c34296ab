// Images from untrusted sources: a pixel limit checked on the header before decoding (any claimed size, also
// beyond sharp's own limit), a default that fits a service (IBQ_MAX_PIXELS sets another) and the memory per
// megapixel README states, a stable code for undecodable input, missing arguments named, unknown option keys
// rejected.
import { deflateSync } from 'node:zlib';

import sharp from 'sharp';
import { describe, expect, it } from 'vitest';

import { decodeImage, DEFAULT_MAX_PIXELS, loadImage, loadImages, Tokenizer } from '../../dist/index.js';
import { run } from '../support/run.js';

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** A width x height RGB PNG cut short (a few bytes of pixel data): its header reads, decoding it fails. */
function pngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(16))), chunk('IEND', Buffer.alloc(0))]);
}
const codeOf = (p: Promise<unknown>) => p.then(() => 'resolved', (e: Error & { code?: string }) => e.code ?? `no code: ${e.message}`);

describe('image input limits', () => {
  it('refuses a 10000 x 10000 upload from its header by default (ERR_IBQ_IMAGE_TOO_LARGE)', async () => {
    expect(DEFAULT_MAX_PIXELS).toBeLessThan(10000 * 10000);
    const huge = pngHeader(10000, 10000);
    expect((await sharp(huge).metadata()).width).toBe(10000); // a valid header
    expect(await codeOf(loadImages([huge], 32))).toBe('ERR_IBQ_IMAGE_TOO_LARGE');
    await expect(loadImage(huge, 32)).rejects.toThrow(/inputs\[0\].*10000x10000.*maxPixels 16777216/);
  });

  it('a header claiming more than sharp itself opens (20000 x 20000, 70000 x 70000) is too large, not undecodable', async () => {
    for (const side of [20000, 70000]) {
      expect(await codeOf(loadImages([pngHeader(side, side)], 32)), String(side)).toBe('ERR_IBQ_IMAGE_TOO_LARGE');
      expect(await codeOf(loadImages([pngHeader(side, side)], 32, { maxPixels: 2 ** 40 })), String(side)).toBe('ERR_IBQ_BAD_IMAGE');
    }
    await expect(loadImage(pngHeader(20000, 20000), 32)).rejects.toThrow(/20000x20000 = 400000000 pixels, more than maxPixels/);
  });

  it('the default fits a service (4096 x 4096); IBQ_MAX_PIXELS sets another', async () => {
    expect(DEFAULT_MAX_PIXELS).toBe(4096 * 4096);
    expect(await codeOf(loadImages([pngHeader(4097, 4096)], 32))).toBe('ERR_IBQ_IMAGE_TOO_LARGE');
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#808080' } }).png().toBuffer();
    const saved = process.env.IBQ_MAX_PIXELS;
    try {
      process.env.IBQ_MAX_PIXELS = String(64 * 48 - 1);
      expect(await codeOf(loadImages([png], 16))).toBe('ERR_IBQ_IMAGE_TOO_LARGE');
      expect((await loadImages([png], 16, { maxPixels: 64 * 48 })).length).toBe(3 * 16 * 16); // the option wins
      process.env.IBQ_MAX_PIXELS = String(64 * 48);
      expect((await loadImages([png], 16)).length).toBe(3 * 16 * 16);
      process.env.IBQ_MAX_PIXELS = 'lots';
      await expect(loadImages([png], 16)).rejects.toThrow(/IBQ_MAX_PIXELS: expected a positive integer, got "lots"/);
    } finally {
      if (saved === undefined) delete process.env.IBQ_MAX_PIXELS;
      else process.env.IBQ_MAX_PIXELS = saved;
    }
  });

  it('decoding holds at most 4.5 MB per megapixel of input (README: about 3.5 to 3.9; plain RGB in one pass: under 2), measured as peak RSS', async () => {
    // 4000 x 4000 PNGs of one colour: a few KB uploaded, 16 megapixels decoded; RGBA goes through the two-pass
    // path (alpha dropped first: the full-size RGB pixels are held), RGB through the one-pass pipeline
    const measure = async (channels: 3 | 4) => {
      const code = `
        import sharp from 'sharp';
        import { decodeImage } from ${JSON.stringify(new URL('../../dist/index.js', import.meta.url).href)};
        const png = await sharp({ create: { width: 4000, height: 4000, channels: ${channels}, background: '#808080' } }).png().toBuffer();
        await decodeImage(await sharp({ create: { width: 64, height: 64, channels: ${channels}, background: '#000' } }).png().toBuffer(), 256);
        globalThis.gc();
        const before = process.memoryUsage().rss;
        let peak = before;
        const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2);
        const x = await decodeImage(png, 256);
        clearInterval(timer);
        peak = Math.max(peak, process.memoryUsage().rss);
        console.log(JSON.stringify({ bytes: png.length, values: x.length, mbPerMegapixel: (peak - before) / 1e6 / 16 }));`;
      const r = await run(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { timeout: 120_000, cwd: new URL('../..', import.meta.url).pathname });
      expect(r.status, r.stderr).toBe(0);
      const m = JSON.parse(r.stdout.trim()) as { bytes: number; values: number; mbPerMegapixel: number };
      expect(m.values).toBe(3 * 256 * 256);
      expect(m.bytes).toBeLessThan(1_000_000); // far less than the 48 MB of decoded RGB
      console.log(`decoding a ${m.bytes}-byte 4000 x 4000 ${channels === 4 ? 'RGBA' : 'RGB'} PNG: ${m.mbPerMegapixel.toFixed(2)} MB of RSS per megapixel`);
      return m.mbPerMegapixel;
    };
    const rgba = await measure(4);
    expect(rgba).toBeLessThanOrEqual(4.5);
    expect(rgba).toBeGreaterThan(2); // the full-size RGB pixels (3 bytes each) are held: the measure sees them
    expect(await measure(3)).toBeLessThan(2); // streamed: decode, resize and crop in one libvips pipeline
  }, 240_000);

  it('a missing argument is named and said to be missing', async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toBuffer();
    await expect(loadImages([png], undefined as never)).rejects.toThrow(/^size: expected an integer, got nothing \(the value is missing\)$/);
    await expect(decodeImage(png, undefined as never)).rejects.toThrow(TypeError);
    await expect(loadImages([undefined as never], 8)).rejects.toThrow(/^inputs\[0\]: expected a path or a Buffer, got nothing \(the value is missing\)$/);
    await expect(decodeImage(png, 8, 'middle' as never)).rejects.toThrow(/^crop: expected 'centre' or \{ fx, fy, flip\? \}/);
  });

  it('maxPixels counts width x height of the input; under it the image loads', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#808080' } }).png().toBuffer();
    expect(await codeOf(loadImages([png], 16, { maxPixels: 64 * 48 - 1 }))).toBe('ERR_IBQ_IMAGE_TOO_LARGE');
    expect((await loadImages([png], 16, { maxPixels: 64 * 48 })).length).toBe(3 * 16 * 16);
    await expect(loadImages([png], 16, { maxPixels: 0 })).rejects.toThrow(RangeError);
  });

  it('undecodable input is ERR_IBQ_BAD_IMAGE naming the input', async () => {
    const bad = Buffer.from('this is not an image at all');
    expect(await codeOf(loadImages([bad], 16))).toBe('ERR_IBQ_BAD_IMAGE');
    await expect(loadImages([bad], 16)).rejects.toThrow(/inputs\[0\] \(27 bytes\): not a decodable image/);
    // a truncated PNG: the header reads, the pixels do not
    expect(await codeOf(loadImages([pngHeader(8, 8)], 8))).toBe('ERR_IBQ_BAD_IMAGE');
  });

  it('unknown option keys are rejected, as sample() rejects them', async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toBuffer();
    await expect(loadImages([png], 8, { max_pixels: 5 } as never)).rejects.toThrow(/opts\.max_pixels: unknown option \(did you mean maxPixels\?\)/);
    const tok = Tokenizer.create({
      ddconfig: { double_z: false, z_channels: 32, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
        num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
      n_embed: 16, embed_dim: 8,
    } as never);
    await expect(tok.encodeImages([png], { imageSize: 8, size: 8 } as never)).rejects.toThrow(/opts\.size: unknown option/);
    expect(await codeOf(tok.encodeImages([png], { imageSize: 8, maxPixels: 63 }))).toBe('ERR_IBQ_IMAGE_TOO_LARGE');
    const { indices } = await tok.encodeImages([png], { imageSize: 8, maxPixels: 64 });
    expect(indices.shape).toEqual([1, 4, 4]);
  });
});

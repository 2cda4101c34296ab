/** Models and inputs for the `ibq serve` tests: the tokenizer fixture, a tiny transformer over its codebook, PNGs. */
import { deflateSync, crc32 } from 'node:zlib';

import sharp from 'sharp';

import { createServer, type IbqServer, type ServeOptions } from '../../dist/index.js';
import { fixtureTokenizer, tinyTransformer } from '../support/ar_tiny.js';

/** A server over the fixture tokenizer and a tiny transformer (logger off unless given). */
export async function tinyServer(opts: Partial<ServeOptions> = {}, withAr = true): Promise<IbqServer> {
  const tokenizer = await fixtureTokenizer();
  const transformer = withAr ? await tinyTransformer(2) : undefined;
  return createServer({ tokenizer, transformer, logger: false, ...opts });
}

/** A 32 x 32 PNG with a colour pattern set by `k`. */
export async function patternPng(k: number, size = 32): Promise<Buffer> {
  const px = Buffer.alloc(size * size * 3);
  for (let i = 0; i < size * size; i++) {
    px[i * 3] = (i * (k + 3)) % 256;
    px[i * 3 + 1] = ((i >> 5) * 8 + k * 40) % 256;
    px[i * 3 + 2] = (k * 70) % 256;
  }
  return sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

/** A small PNG whose header claims width x height (a decompression bomb's header; the pixel data is a stub). */
export function bombPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1024))), chunk('IEND', Buffer.alloc(0)),
  ]);
}

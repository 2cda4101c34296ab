// The JPEG decoder of the image pipeline (native/ibq/core/jpeg_decode.h, libjpeg-turbo linked into the addon): its RGB
// bytes equal PIL's Image.open(f).convert('RGB') on JPEGs written by PIL (4:2:0, 4:2:2 and 4:4:4 subsampling,
// progressive, greyscale, CMYK, odd sizes, restart markers) and by sharp/libvips (CMYK with Adobe's inverted
// polarity); a truncated file, a corrupt header and a 12-bit-like unsupported stream are ERR_IBQ_BAD_IMAGE naming the
// file (libjpeg's errors never end the process), as PIL refuses them too; decode workers give the same pixels.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { BatchBuffers, DecodePool, decodeImage } from '../../dist/index.js';
import { native } from '../../dist/native.js';
import { HAVE_TORCH, runPython } from '../support/torch_ref.js';

const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';

// JPEGs written by PIL from the skimage photos: name -> how
const MAKE = `
import sys
from PIL import Image
d, src = sys.argv[1], sys.argv[2]
im = Image.open(src).convert('RGB')
odd = im.resize((333, 217), Image.BILINEAR)
im.save(d + '/s420.jpg', quality=90, subsampling=2)
im.save(d + '/s422.jpg', quality=85, subsampling=1)
im.save(d + '/s444.jpg', quality=95, subsampling=0)
im.save(d + '/progressive.jpg', quality=90, progressive=True)
odd.save(d + '/odd_progressive_444.jpg', quality=75, progressive=True, subsampling=0)
odd.save(d + '/odd_restart.jpg', quality=80, restart_marker_blocks=3)
im.convert('L').save(d + '/grey.jpg', quality=90)
odd.convert('L').save(d + '/grey_progressive.jpg', quality=90, progressive=True)
im.convert('CMYK').save(d + '/cmyk.jpg', quality=90)
`;

// PIL's bytes of each file: convert('RGB'), HWC, concatenated, base64; or the error's class for files PIL refuses
const PIL = `
import base64, json, sys
from PIL import Image
out = []
for f in json.loads(sys.argv[1]):
    try:
        im = Image.open(f).convert('RGB')
        out.append({'w': im.size[0], 'h': im.size[1], 'px': base64.b64encode(im.tobytes()).decode()})
    except Exception as e:
        out.append({'error': type(e).__name__ + ': ' + str(e)})
print(json.dumps(out))
`;

describe.skipIf(!HAVE_TORCH)('JPEG decoding (libjpeg-turbo in the addon)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-jpeg-'));
  const files: string[] = [];
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeAll(async () => {
    await runPython(MAKE, [dir, join(SKIMAGE, 'chelsea.png')]);
    files.push(...['s420', 's422', 's444', 'progressive', 'odd_progressive_444', 'odd_restart', 'grey', 'grey_progressive', 'cmyk'].map((n) => join(dir, `${n}.jpg`)));
    // libvips writes CMYK JPEGs too (inverted, with an Adobe marker), and greyscale from a PNG
    await sharp(join(SKIMAGE, 'astronaut.png')).toColourspace('cmyk').jpeg({ quality: 90 }).toFile(join(dir, 'vips_cmyk.jpg'));
    await sharp(join(SKIMAGE, 'coffee.png')).jpeg({ quality: 80, chromaSubsampling: '4:4:4', progressive: true }).toFile(join(dir, 'vips_444.jpg'));
    files.push(join(dir, 'vips_cmyk.jpg'), join(dir, 'vips_444.jpg'), join(SKIMAGE, 'rocket.jpg'));
  }, 60_000);

  it("decodes to PIL's convert('RGB') bytes exactly", async () => {
    const ref = JSON.parse(await runPython(PIL, [JSON.stringify(files)])) as { w: number; h: number; px: string }[];
    const kinds = new Set<number>();
    for (const [i, f] of files.entries()) {
      const bytes = readFileSync(f);
      const s = native.jpegSize(bytes);
      kinds.add(s.components);
      expect([s.width, s.height], f).toEqual([ref[i]!.w, ref[i]!.h]);
      const ours = Buffer.from(native.decodeJpeg(bytes));
      const theirs = Buffer.from(ref[i]!.px, 'base64');
      expect(ours.length, f).toBe(theirs.length);
      let differing = 0;
      for (let k = 0; k < ours.length; k++) if (ours[k] !== theirs[k]) differing++;
      expect(differing, f).toBe(0);
    }
    expect([...kinds].sort()).toEqual([1, 3, 4]); // greyscale, YCbCr and CMYK streams were all met
  }, 120_000);

  it('refuses truncated and corrupt files as PIL does, naming them (ERR_IBQ_BAD_IMAGE), without ending the process', async () => {
    const whole = readFileSync(join(dir, 's420.jpg'));
    const progressive = readFileSync(join(dir, 'progressive.jpg'));
    const cases: [string, Buffer][] = [
      ['truncated.jpg', whole.subarray(0, Math.floor(whole.length / 2))],
      ['truncated_progressive.jpg', progressive.subarray(0, Math.floor(progressive.length * 0.7))],
      ['header_only.jpg', whole.subarray(0, 200)],
      ['garbage.jpg', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(500, 0x5a)])],
    ];
    // a 12-bit stream: the SOF0 marker's precision byte set to 12 (libjpeg-turbo's 8-bit decoder and PIL refuse it)
    const twelve = Buffer.from(whole);
    const sof = twelve.indexOf(Buffer.from([0xff, 0xc0]));
    twelve[sof + 4] = 12;
    cases.push(['twelve_bit.jpg', twelve]);
    for (const [name, b] of cases) writeFileSync(join(dir, name), b);
    const ref = JSON.parse(await runPython(PIL, [JSON.stringify(cases.map(([n]) => join(dir, n)))])) as { error?: string }[];
    for (const [k, [name]] of cases.entries()) {
      expect(ref[k]!.error, `PIL refuses ${name}`).toBeDefined();
      const f = join(dir, name);
      const err = await decodeImage(f, 64, 'centre').then(() => undefined, (e: Error & { code?: string }) => e);
      expect(err, name).toBeInstanceOf(Error);
      expect(err!.code, name).toBe('ERR_IBQ_BAD_IMAGE');
      expect(err!.message, name).toContain(`${f}: not a decodable JPEG: `);
    }
    const err = await decodeImage(join(dir, 'truncated.jpg'), 64, 'centre').catch((e: Error) => e);
    expect((err as Error).message).toMatch(/truncated: the data ends before the image is complete/);
    expect(() => native.decodeJpeg(whole.subarray(0, 1000))).toThrow(/truncated/);
  });

  it('decode workers write the pixels decodeImage gives into a shared batch, and report bad files', async () => {
    const pool = new DecodePool(2);
    const size = 48, per = 3 * size * size;
    const batch = new BatchBuffers(true).take(files.length * per);
    expect(batch.buffer).toBeInstanceOf(SharedArrayBuffer);
    try {
      const crops = files.map((_, i) => ({ fx: i / files.length, fy: 0.3, flip: i % 2 === 0 }));
      await Promise.all(files.map((f, i) => pool.decodeInto(f, size, crops[i]!, batch.subarray(i * per, (i + 1) * per))));
      for (const [i, f] of files.entries()) {
        const want = await decodeImage(f, size, crops[i]!);
        expect(Buffer.compare(Buffer.from(batch.slice(i * per, (i + 1) * per).buffer), Buffer.from(want.buffer)), f).toBe(0);
      }
      const bad = pool.decodeInto(join(dir, 'truncated.jpg'), size, 'centre', batch.subarray(0, per));
      await expect(bad).rejects.toMatchObject({ code: 'ERR_IBQ_BAD_IMAGE', message: expect.stringContaining('truncated.jpg: not a decodable JPEG') });
    } finally {
      pool.close();
    }
  });
});

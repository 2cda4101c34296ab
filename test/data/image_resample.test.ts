// decodeImage's resize is Pillow's: for inputs up to 4 megapixels the uint8 pixels of every crop equal
// PIL.Image.open(f).convert('RGB').resize((w, h), BILINEAR) cut to the same box (mirrored when drawn), computed by
// /usr/bin/python3, for photos (rocket.jpg has an ICC profile: ignored, as PIL ignores it), JPEGs (progressive, CMYK)
// and for synthetic images of awkward sizes (thinner than the filter, upscaled, square, 3 x 3), with the
// AVX-512, AVX2 and scalar passes (IBQ_KERNEL) giving the same bytes.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import { run } from '../support/run.js';
import { HAVE_TORCH, runPython } from '../support/torch_ref.js';

const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
const PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png'].map((f) => join(SKIMAGE, f));
const HAVE = HAVE_TORCH && PHOTOS.every((p) => existsSync(p));
const root = new URL('../..', import.meta.url).pathname;

// ours, in a child process (IBQ_KERNEL is read once per process): every job's crop as uint8 CHW, concatenated, base64
const OURS = `
import { decodeImage } from '${root}dist/index.js';
const jobs = JSON.parse(process.argv[1]);
const out = [];
for (const j of jobs) {
  const x = await decodeImage(j.file, j.size, j.crop);
  const u = Buffer.alloc(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = Math.round((x[i] + 1) * 127.5);
    if (Math.fround(v / 127.5 - 1) !== x[i]) throw new Error('not a value of x / 127.5 - 1: ' + x[i]);
    u[i] = v;
  }
  out.push(u);
}
process.stdout.write(Buffer.concat(out).toString('base64'));
`;

const PIL = `
import base64, json, sys
import numpy as np
from PIL import Image
out = []
for j in json.loads(sys.argv[1]):
    im = Image.open(j['file']).convert('RGB')
    w0, h0 = im.size
    S = j['size']
    s = S / min(w0, h0)
    w, h = max(S, int(np.floor(w0 * s + 0.5))), max(S, int(np.floor(h0 * s + 0.5)))
    c = j['crop']
    x, y, flip = ((w - S) // 2, (h - S) // 2, False) if c == 'centre' else (int(np.floor(c['fx'] * (w - S + 1))), int(np.floor(c['fy'] * (h - S + 1))), c['flip'])
    a = np.asarray(im.resize((w, h), Image.BILINEAR).crop((x, y, x + S, y + S)))
    if flip:
        a = a[:, ::-1]
    out.append(np.ascontiguousarray(a.transpose(2, 0, 1)).tobytes())
sys.stdout.write(base64.b64encode(b''.join(out)).decode())
`;

describe.skipIf(!HAVE)('decodeImage resizes as Pillow', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-resample-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the uint8 pixels of centre and random crops (mirrored or not) equal PIL\'s, with every kernel', async () => {
    const files = [...PHOTOS];
    let seed = 11;
    const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
    for (const [w, h] of [[7, 300], [300, 7], [100, 80], [256, 256], [257, 1000], [1000, 256], [3, 3], [640, 480], [2000, 1500]]) {
      const px = Buffer.alloc(w * h * 3);
      for (let i = 0; i < px.length; i++) px[i] = Math.floor(rnd() * 256);
      const f = join(dir, `${w}x${h}.png`);
      await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(f);
      files.push(f);
    }
    // JPEGs (decoded by libjpeg-turbo in the addon): progressive 4:2:0 of an odd size, and CMYK
    const jpeg = join(dir, 'odd.jpg'), cmyk = join(dir, 'cmyk.jpg');
    await sharp(PHOTOS[1]).resize(333, 251, { fit: 'fill' }).jpeg({ quality: 85, progressive: true }).toFile(jpeg);
    await sharp(PHOTOS[0]).toColourspace('cmyk').jpeg({ quality: 90 }).toFile(cmyk);
    files.push(jpeg, cmyk);
    const jobs = [];
    for (const size of [256, 64, 33]) {
      for (const file of files) {
        jobs.push({ file, size, crop: 'centre' });
        jobs.push({ file, size, crop: { fx: rnd(), fy: rnd(), flip: rnd() < 0.5 } });
      }
    }
    const ref = Buffer.from(await runPython(PIL, [JSON.stringify(jobs)]), 'base64');
    expect(ref.length).toBe(jobs.reduce((n, j) => n + 3 * j.size * j.size, 0));
    for (const kernel of ['avx512', 'avx2', 'aten']) {
      const r = await run(process.execPath, ['--input-type=module', '-e', OURS, JSON.stringify(jobs)], { env: { ...process.env, IBQ_KERNEL: kernel }, maxBuffer: 64 << 20, timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      const ours = Buffer.from(r.stdout, 'base64');
      expect(ours.length).toBe(ref.length);
      let differing = 0;
      for (let i = 0; i < ref.length; i++) if (ours[i] !== ref[i]) differing++;
      if (differing) {
        // which crops, by how much
        let off = 0;
        for (const j of jobs) {
          const n = 3 * j.size * j.size;
          let d = 0, most = 0;
          for (let i = off; i < off + n; i++) if (ours[i] !== ref[i]) (d++, (most = Math.max(most, Math.abs(ours[i]! - ref[i]!))));
          if (d) console.log(`${JSON.stringify(j)}: ${d} bytes differ, by up to ${most}`);
          off += n;
        }
      }
      expect(differing, `IBQ_KERNEL=${kernel}`).toBe(0);
    }
  }, 300_000);
});

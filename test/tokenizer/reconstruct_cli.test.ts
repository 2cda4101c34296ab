// `ibq reconstruct`: never two inputs to one output file; the output folder only once the inputs are checked.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { saveCheckpoint, Tokenizer } from '../../dist/index.js';
import { run } from '../support/run.js';

const bin = new URL('../../bin/ibq.js', import.meta.url).pathname;
const CONFIG = {
  ddconfig: { double_z: false, z_channels: 32, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  n_embed: 16, embed_dim: 8,
};

describe('ibq reconstruct outputs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-reconstruct-'));
  const ckpt = join(dir, 'tok.ckpt');
  const reconstruct = (...args: string[]) => run('node', [bin, 'reconstruct', '--ckpt', ckpt, ...args], { cwd: dir });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeAll(async () => {
    const tok = Tokenizer.create(CONFIG as never, { seed: 1 });
    await saveCheckpoint(ckpt, { stateDict: tok.stateDict() });
    for (const [sub, ext, colour] of [['dupA', 'jpg', '#c33'], ['dupB', 'png', '#3c3']] as const) {
      mkdirSync(join(dir, sub));
      const img = sharp({ create: { width: 20, height: 16, channels: 3, background: colour } });
      writeFileSync(join(dir, sub, `img.${ext}`), await (ext === 'jpg' ? img.jpeg() : img.png()).toBuffer());
    }
    writeFileSync(join(dir, 'dupB', 'other.png'), await sharp({ create: { width: 16, height: 16, channels: 3, background: '#33c' } }).png().toBuffer());
  });

  it('refuses two inputs that map to one output file, naming both, and creates nothing', async () => {
    const r = await reconstruct('dupA/img.jpg', 'dupB/img.png', '--out', 'd');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/dupA\/img\.jpg and dupB\/img\.png would both be written to d\/img\.png/);
    expect(existsSync(join(dir, 'd'))).toBe(false);
    // the same file given twice is the same clash
    expect((await reconstruct('dupB/other.png', 'dupB/other.png', '--out', 'd')).status).not.toBe(0);
    expect(existsSync(join(dir, 'd'))).toBe(false);
  });

  it('creates no output folder when an input is missing or the image size is invalid', async () => {
    const missing = await reconstruct('dupA/img.jpg', 'nope/none.png', '--out', 'e');
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/nope\/none\.png: cannot read the image \(ENOENT\)/);
    expect(existsSync(join(dir, 'e'))).toBe(false);
    const badSize = await reconstruct('dupA/img.jpg', '--image-size', '15', '--out', 'f');
    expect(badSize.status).not.toBe(0);
    expect(badSize.stderr).toMatch(/15 is not divisible by 2/);
    expect(existsSync(join(dir, 'f'))).toBe(false);
  });

  it('writes one file per input when the names differ', async () => {
    const ok = await reconstruct('dupA/img.jpg', 'dupB/other.png', '--out', 'g');
    expect(ok.status, ok.stderr).toBe(0);
    expect(readdirSync(join(dir, 'g')).sort()).toEqual(['img.png', 'other.png']);
  });
});

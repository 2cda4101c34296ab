// Acceptance 3 of the evaluation issue: `ibq eval-tokenizer` on a folder of real photos (python3-skimage's data
// folder) with the fixture tokenizer and weight files passed explicitly (the fixture Inception file; VGG LPIPS
// from the checkpoint's loss.perceptual_loss.*): prints rFID, LPIPS, PSNR, SSIM and utilization and writes JSON.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';
import { HAVE_TORCH, runPython } from '../support/torch_ref.js';
import { run } from '../support/run.js';

const PHOTOS = '/usr/lib/python3/dist-packages/skimage/data';
const FILES = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'camera.png'];
const HAVE_PHOTOS = FILES.every((f) => existsSync(join(PHOTOS, f)));

describe.skipIf(!HAVE_FIXTURES || !HAVE_PHOTOS)('ibq eval-tokenizer on real photos', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-evalcli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the metrics, writes them as JSON, and states the Inception is the pytorch-fid port', async () => {
    const data = join(dir, 'val', 'n0');
    await run('mkdir', ['-p', data]);
    for (const f of FILES) copyFileSync(join(PHOTOS, f), join(data, f));  // RGB PNGs, a JPEG, a greyscale PNG
    const json = join(dir, 'metrics.json');
    const r = await run(
      process.execPath,
      [join(__dirname, '..', '..', 'bin', 'ibq.js'), 'eval-tokenizer', '--ckpt', fixture('tokenizer', 'model.ckpt'),
        '--data', join(dir, 'val'), '--image-size', '32', '--batch-size', '2',
        '--inception-weights', fixture('metrics', 'fid_inception_weights.pth'), '--json', json],
      { timeout: 300_000 },
    );
    expect(r.stderr).not.toMatch(/ibq:/);
    expect(r.status).toBe(0);
    const m = JSON.parse(readFileSync(json, 'utf8'));
    expect(m.numImages).toBe(5);
    expect(m.nEmbed).toBe(128);
    expect(m.histogram).toHaveLength(128);
    expect(m.histogram.reduce((s: number, c: number) => s + c, 0)).toBe(5 * 16 * 16);  // 16x16 tokens per image
    expect(m.usedCodes).toBe(m.histogram.filter((c: number) => c > 0).length);
    expect(m.utilization).toBeCloseTo(m.usedCodes / 128, 12);
    expect(Number.isFinite(m.rFID) && m.rFID > 0).toBe(true);
    expect(m.warnings[0]).toMatch(/singular/);  // 5 images of 2048-d features
    expect(m.lpips.vgg).toBeGreaterThan(0);
    expect(m.psnr).toBeGreaterThan(0);
    expect(m.ssim).toBeGreaterThan(-1);
    expect(m.ssim).toBeLessThan(1);
    const out = r.stdout;
    expect(out).toMatch(new RegExp(`rFID\\s+${m.rFID.toFixed(4)}`));
    expect(out).toMatch(new RegExp(`LPIPS \\(vgg\\)\\s+${m.lpips.vgg.toFixed(4)}`));
    expect(out).toMatch(new RegExp(`PSNR\\s+${m.psnr.toFixed(4)}`));
    expect(out).toMatch(new RegExp(`SSIM\\s+${m.ssim.toFixed(4)}`));
    expect(out).toMatch(/utilization\s+\d+\.\d+% \(\d+ \/ 128 codes\)/);
    expect(out).toMatch(/pytorch-fid port/);
  });
});

describe.skipIf(!HAVE_FIXTURES || !HAVE_TORCH)('ibq eval-samples', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-evalsamples-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads ADM-style .npz files (uint8 [N,H,W,3] in arr_0); identical sets give FID 0; prints IS', async () => {
    await runPython(
      `import numpy as np, sys
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(10, 16, 16, 3), dtype=np.uint8)
np.savez(sys.argv[1] + '/samples.npz', arr_0=x)
np.savez(sys.argv[1] + '/ref.npz', arr_0=x)`,
      [dir],
    );
    const json = join(dir, 'samples.json');
    const r = await run(
      process.execPath,
      [join(__dirname, '..', '..', 'bin', 'ibq.js'), 'eval-samples', join(dir, 'samples.npz'), '--ref', join(dir, 'ref.npz'),
        '--inception-weights', fixture('metrics', 'fid_inception_weights.pth'), '--batch-size', '4', '--json', json],
      { timeout: 300_000 },
    );
    expect(r.stderr).not.toMatch(/ibq:/);
    expect(r.status).toBe(0);
    const m = JSON.parse(readFileSync(json, 'utf8'));
    expect(m.numSamples).toBe(10);
    expect(m.refFrom).toBe('images');
    expect(Math.abs(m.fid)).toBeLessThanOrEqual(1e-6);
    expect(m.inceptionScore.splits).toBe(10);
    expect(m.inceptionScore.mean).toBeGreaterThanOrEqual(1);
    expect(r.stdout).toMatch(/IS\s+\d+\.\d+ \+- \d+\.\d+ \(10 splits\)/);
    expect(r.stdout).toMatch(/pytorch-fid port/);
  });
});

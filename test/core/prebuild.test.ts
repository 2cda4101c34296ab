// Prebuilt addons: which file the loader takes (a build from source, else a prebuild whose libtorch tag is the
// libtorch found at run time; never one for another libtorch), and the check that a prebuild runs on any x86-64 CPU.
// The whole install (pack, install with no compiler, rebuild from source) is scripts/ci-pack-test.sh in CI.
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { chooseAddon, libtorchTag, native } from '../../dist/native.js';
// @ts-expect-error: a plain JavaScript script without types
import { scanIsa } from '../../scripts/check-isa.js';
import { run } from '../support/run.js';

const root = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const platform = `${process.platform}-${process.arch}`;
const here = native.info(); // the libtorch this addon was built against, and the folder it loaded it from

/** A package folder with a prebuild tagged `tag` (the file's content does not matter: chooseAddon does not load it). */
function fakePackage(tag: string | undefined, sidecarVersion = here.libtorch): string {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-prebuild-'));
  const folder = join(dir, 'prebuilds', platform);
  mkdirSync(folder, { recursive: true });
  const base = ['ibq-native', tag, 'napi', 'glibc'].filter(Boolean).join('.');
  writeFileSync(join(folder, `${base}.node`), 'not an addon');
  writeFileSync(join(folder, `${base}.json`), JSON.stringify({ version: sidecarVersion, libdir: here.libtorchDir }));
  return dir;
}

function addBuild(dir: string, version: string): void {
  const release = join(dir, 'build', 'Release');
  mkdirSync(release, { recursive: true });
  writeFileSync(join(release, 'ibq_native.node'), 'not an addon');
  writeFileSync(join(release, 'ibq-native.libtorch.json'), JSON.stringify({ version, libdir: here.libtorchDir }));
}

describe('which addon the loader takes', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.PREBUILDS_ONLY;
    delete process.env.PREBUILDS_ONLY;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.PREBUILDS_ONLY;
    else process.env.PREBUILDS_ONLY = saved;
  });

  it('a prebuild tagged with the libtorch found at run time', () => {
    expect(here.libtorchDir).toBeTruthy();
    const dir = fakePackage(libtorchTag(here.libtorch));
    const c = chooseAddon(dir);
    expect(c.kind).toBe('prebuild');
    expect(c.file).toBe(join(dir, 'prebuilds', platform, `ibq-native.libtorch-${here.libtorch.split('.').join('_')}.napi.glibc.node`));
  });

  it('never a prebuild for another libtorch, nor one without a libtorch tag: "not built", naming both versions', () => {
    const other = '0.0.1';
    const dir = fakePackage(libtorchTag(other), other);
    let err: (Error & { code?: string }) | undefined;
    try {
      chooseAddon(dir);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.code).toBe('ERR_IBQ_ADDON');
    expect(err?.message).toMatch(/not built/);
    expect(err?.message).toContain(`libtorch ${other}`);
    expect(err?.message).toContain(`libtorch ${here.libtorch} in `);
    expect(() => chooseAddon(fakePackage(undefined))).toThrow(/not built/);
    // a sidecar that contradicts the file name's tag is not trusted either
    expect(() => chooseAddon(fakePackage(libtorchTag(here.libtorch), other))).toThrow(/not built/);
  });

  it('a build from source first (as node-gyp-build), unless PREBUILDS_ONLY; a build for another libtorch is an error', () => {
    const dir = fakePackage(libtorchTag(here.libtorch));
    addBuild(dir, here.libtorch);
    expect(chooseAddon(dir)).toMatchObject({ kind: 'build', file: join(dir, 'build', 'Release', 'ibq_native.node') });
    process.env.PREBUILDS_ONLY = '1';
    expect(chooseAddon(dir).kind).toBe('prebuild');
    delete process.env.PREBUILDS_ONLY;
    const stale = fakePackage(undefined);
    addBuild(stale, '0.0.1');
    expect(() => chooseAddon(stale)).toThrow(new RegExp(`built against libtorch 0\\.0\\.1, but libtorch ${here.libtorch.replace(/\./g, '\\.')} is installed`));
  });

  it('this checkout loads what it built (the file CI ships as the prebuild)', () => {
    if (process.env.PREBUILDS_ONLY === undefined) expect(chooseAddon(root).kind).toBe('build');
  });
});

describe.skipIf(process.platform !== 'linux' || process.arch !== 'x64')('baseline x86-64 outside the dispatched kernels', () => {
  it('the addon: AVX2 and AVX-512 instructions only in the fused quantizer kernels', () => {
    const r = scanIsa(chooseAddon(root).file) as { kernels: { avx2: number; avx512: number }; offenders: string[] };
    expect(r.offenders).toEqual([]);
    expect(r.kernels.avx2).toBeGreaterThan(0);
    expect(r.kernels.avx512).toBeGreaterThan(0);
  });

  it('the check finds AVX code in a function of another file (what -march=native or -mavx2 would leave)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-isa-'));
    writeFileSync(join(dir, 'leak.cpp'),
      'extern "C" float leaky_sum(const float* a, int n) { float s = 0; for (int i = 0; i < n; ++i) s += a[i] * a[i]; return s; }\n');
    const cc = await run('c++', ['-O3', '-ffast-math', '-mavx2', '-fPIC', '-shared', '-o', join(dir, 'leak.so'), join(dir, 'leak.cpp')]);
    expect(cc.status, cc.stderr).toBe(0);
    expect(scanIsa(join(dir, 'leak.so')).offenders).toContain('leaky_sum');
    // the same code for the baseline passes
    copyFileSync(join(dir, 'leak.cpp'), join(dir, 'plain.cpp'));
    expect((await run('c++', ['-O3', '-ffast-math', '-fPIC', '-shared', '-o', join(dir, 'plain.so'), join(dir, 'plain.cpp')])).status).toBe(0);
    expect(scanIsa(join(dir, 'plain.so')).offenders).toEqual([]);
  });
});

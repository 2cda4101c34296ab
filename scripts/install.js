#!/usr/bin/env node
// npm install hook. In order:
//   1. in a git checkout (development, CI) nothing is built here: scripts/setup and `npm run build` do it,
//      so `npm ci` stays fast;
//   2. a prebuilt addon (prebuilds/, made by `npm run build:prebuilds`) is used as is when the package's loader
//      (lib/native.ts chooseAddon) takes it: a prebuild whose libtorch tag is the version of the libtorch found here,
//      loaded once to be sure (PREBUILDS_ONLY=1: a build of an earlier install is not what is tested);
//      IBQ_BUILD_FROM_SOURCE=1 or `npm install --build-from-source` skips this;
//   3. otherwise a build from source: with cmake on the PATH scripts/build-native.js (cmake-js: precompiled
//      header, all cores, ccache when installed), the build the tests run against;
//   4. without cmake, node-gyp (binding.gyp, through node-gyp-build), with one compile job per core.
// npm hides the output of install scripts unless --foreground-scripts is given; the build's progress then
// goes to the terminal (/dev/tty) when there is one, so that a build of several minutes is not silent.
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (existsSync(join(root, '.git')) && !process.env.IBQ_INSTALL_BUILD) {
  console.log('ibq-native: git checkout, skipping the install-time build (run `npm run build` or scripts/setup)');
  process.exit(0);
}

const fromSource = process.env.IBQ_BUILD_FROM_SOURCE === '1' || process.env.npm_config_build_from_source === 'true';
let why = 'a build from source was asked for (IBQ_BUILD_FROM_SOURCE=1 or --build-from-source)';
if (!fromSource) {
  // the loader itself decides, and loading proves the prebuild links against the libtorch found here
  const loader = pathToFileURL(join(root, 'dist', 'native.js')).href;
  const probe = spawnSync(process.execPath, ['--input-type=module', '-e',
    `try { const { chooseAddon } = await import(${JSON.stringify(loader)}); ` +
    `const c = chooseAddon(${JSON.stringify(root)}); console.log(c.kind + ' for libtorch ' + c.libtorch + ': ' + c.file); } ` +
    'catch (e) { console.error(e.message); process.exit(1); }'],
  { env: { ...process.env, PREBUILDS_ONLY: '1' }, encoding: 'utf8' });
  if (probe.status === 0) {
    console.log(`ibq-native: using the prebuilt addon (${probe.stdout.trim()})`);
    process.exit(0);
  }
  // the loader's error without its advice (that is this build)
  why = probe.stderr.trim().split('\n')[0].replace(/^ibq-native: /, '').replace(/; rebuild it .*$/, '') ||
    `the prebuild check exited with ${probe.status ?? probe.signal}`;
}

let out = 'inherit';
let tty;
if (process.env.npm_config_foreground_scripts !== 'true') {
  try {
    tty = openSync('/dev/tty', 'w');
    out = tty;
  } catch {
    /* no terminal (CI): npm shows the output if the build fails */
  }
}
const stdio = ['ignore', out, out];
const say = (line) => writeSync(tty ?? 1, line + '\n');

say(`ibq-native: building from source: ${why}`);
const hasCmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
const start = Date.now();
let r;
if (hasCmake) {
  say(`ibq-native: building the native addon with cmake-js on ${cpus().length} core(s) (a few minutes the first time; ccache makes rebuilds fast)`);
  r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.js')], { stdio, cwd: root });
} else {
  say(`ibq-native: cmake not found; building the native addon with node-gyp on ${cpus().length} core(s) (install cmake for a faster build)`);
  const require = createRequire(import.meta.url);
  const bin = join(dirname(require.resolve('node-gyp-build/package.json')), 'bin.js');
  // build, never test-load a prebuild: node-gyp-build would take one for another libtorch (it ignores our libtorch tag)
  const env = { ...process.env, JOBS: process.env.JOBS ?? String(cpus().length), npm_config_build_from_source: 'true' };
  r = spawnSync(process.execPath, [bin], { stdio, cwd: root, env });
}
if (r.status === 0) say(`ibq-native: native addon built in ${((Date.now() - start) / 1000).toFixed(0)} s`);
if (tty !== undefined) closeSync(tty);
process.exit(r.status ?? 1);

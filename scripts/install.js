#!/usr/bin/env node
// npm install hook. In order:
//   1. a prebuilt addon for this platform (prebuilds/) is used as is;
//   2. in a git checkout (development, CI) nothing is built here: scripts/setup and `npm run build` do it,
//      so `npm ci` stays fast;
//   3. with cmake on the PATH: scripts/build-native.js (cmake-js: precompiled header, all cores, ccache when
//      installed), the build the tests run against;
//   4. otherwise node-gyp (binding.gyp, through node-gyp-build), with one compile job per core.
// npm hides the output of install scripts unless --foreground-scripts is given; the build's progress then
// goes to the terminal (/dev/tty) when there is one, so that a build of several minutes is not silent.
import { closeSync, existsSync, openSync, readdirSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
if (existsSync(prebuilt) && readdirSync(prebuilt).some((f) => f.endsWith('.node'))) process.exit(0);
if (existsSync(join(root, '.git')) && !process.env.IBQ_INSTALL_BUILD) {
  console.log('ibq-native: git checkout, skipping the install-time build (run `npm run build` or scripts/setup)');
  process.exit(0);
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
  const env = { ...process.env, JOBS: process.env.JOBS ?? String(cpus().length) };
  r = spawnSync(process.execPath, [bin], { stdio, cwd: root, env });
}
if (r.status === 0) say(`ibq-native: native addon built in ${((Date.now() - start) / 1000).toFixed(0)} s`);
if (tty !== undefined) closeSync(tty);
process.exit(r.status ?? 1);

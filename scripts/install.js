#!/usr/bin/env node
// npm install hook. A prebuilt addon for this platform (prebuilds/) is used as is; otherwise node-gyp-build
// builds it from source with node-gyp (binding.gyp; npm bundles node-gyp). In a git checkout (development,
// CI) nothing is built here: scripts/setup and `npm run build` (cmake-js) do it, so `npm ci` stays fast.
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
if (existsSync(prebuilt) && readdirSync(prebuilt).some((f) => f.endsWith('.node'))) process.exit(0);
if (existsSync(join(root, '.git'))) {
  console.log('ibq-native: git checkout, skipping the install-time build (run `npm run build` or scripts/setup)');
  process.exit(0);
}
const require = createRequire(import.meta.url);
const bin = join(dirname(require.resolve('node-gyp-build/package.json')), 'bin.js');
const r = spawnSync(process.execPath, [bin], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);

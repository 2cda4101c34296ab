#!/usr/bin/env node
// npm install hook. A prebuilt addon for this platform (prebuilds/) is used as is; otherwise the addon is
// built from source with cmake-js. In a git checkout (development, CI) nothing is built here: scripts/setup
// and `npm run build` do it, so `npm ci` stays fast.
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
if (existsSync(prebuilt) && readdirSync(prebuilt).some((f) => f.endsWith('.node'))) process.exit(0);
if (existsSync(join(root, '.git'))) {
  console.log('ibq-native: git checkout, skipping the install-time build (run `npm run build` or scripts/setup)');
  process.exit(0);
}
const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.js')], { stdio: 'inherit' });
process.exit(r.status ?? 1);

#!/usr/bin/env node
// Builds the addon with cmake-js (incremental). Uses the Node headers npm is configured with (nodedir) or
// the ones installed beside this node binary; never downloads headers.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';

const env = { ...process.env };
if (!env.npm_config_nodedir) {
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
}
// ccache: paths relative to the parent folder, so that checkouts side by side (git worktrees) share the cache;
// the precompiled header is compatible with ccache under this sloppiness.
env.CCACHE_BASEDIR ??= dirname(new URL('..', import.meta.url).pathname);
env.CCACHE_SLOPPINESS ??= 'pch_defines,time_macros,include_file_mtime,include_file_ctime';
const args = ['build', '--parallel', String(Math.max(1, cpus().length))];
if (env.IBQ_DEBUG_BUILD) args.push('--debug');
// cmake-js is a dependency: in an installed package npm may hoist it next to this package, not inside it.
const cmakeJs = join(dirname(createRequire(import.meta.url).resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, ...args], { stdio: 'inherit', env });
if (r.status !== 0) {
  console.error(
    '\nibq-native: the native build failed (see above). If libtorch is missing: on Debian, apt-get install ' +
      'libtorch-dev libgloo-dev (scripts/setup does it as root); elsewhere set LIBTORCH to an unpacked libtorch.',
  );
  process.exit(r.status ?? 1);
}

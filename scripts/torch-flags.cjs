#!/usr/bin/env node
// Prints libtorch build flags for binding.gyp, with the same discovery order as CMakeLists.txt:
//   1. LIBTORCH (an unpacked libtorch) or Torch_DIR / CMAKE_PREFIX_PATH;
//   2. a Python torch package ($IBQ_PYTHON, else python3, then /usr/bin/python3);
//   3. the system (Debian libtorch-dev).
// Usage: node scripts/torch-flags.cjs include|libdir|libs|version|json
'use strict';
const { existsSync, readFileSync } = require('node:fs');
const { execFileSync } = require('node:child_process');
const { join, resolve } = require('node:path');

function fromRoot(root, how) {
  const inc = join(root, 'include');
  const lib = join(root, 'lib');
  if (existsSync(join(inc, 'torch', 'csrc', 'api', 'include', 'torch', 'version.h')) &&
      (existsSync(join(lib, 'libtorch_cpu.so')) || existsSync(join(lib, 'libtorch.so')))) {
    return { how, include: [inc, join(inc, 'torch', 'csrc', 'api', 'include')], libdir: lib };
  }
  return undefined;
}

function fromCmakeDir(dir, how) {
  // <root>/share/cmake/Torch or <root>/share/cmake
  for (const up of ['../../..', '../..', '..']) {
    const r = fromRoot(resolve(dir, up), how);
    if (r) return r;
  }
  return undefined;
}

function discover() {
  const tried = [];
  if (process.env.LIBTORCH) {
    tried.push(`LIBTORCH=${process.env.LIBTORCH}`);
    const r = fromRoot(process.env.LIBTORCH, 'LIBTORCH');
    if (r) return r;
  }
  for (const v of [process.env.Torch_DIR, ...(process.env.CMAKE_PREFIX_PATH ?? '').split(':')].filter(Boolean)) {
    tried.push(`Torch_DIR/CMAKE_PREFIX_PATH ${v}`);
    const r = fromCmakeDir(v, 'Torch_DIR') ?? fromRoot(v, 'CMAKE_PREFIX_PATH');
    if (r) return r;
  }
  const pythons = process.env.IBQ_PYTHON ? [process.env.IBQ_PYTHON] : ['python3', '/usr/bin/python3'];
  for (const py of pythons) {
    tried.push(`python torch via ${py}`);
    try {
      const p = execFileSync(py, ['-c', 'import torch.utils; print(torch.utils.cmake_prefix_path)'], {
        encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
      const r = fromCmakeDir(join(p, 'Torch'), `python (${py})`);
      if (r) return r;
    } catch { /* no torch there: fall through */ }
  }
  tried.push('system');
  const sys = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib', '/usr/local/lib'];
  for (const libdir of sys) {
    if (existsSync(join(libdir, 'libtorch_cpu.so')) || existsSync(join(libdir, 'libtorch.so'))) {
      for (const inc of ['/usr/include', '/usr/local/include']) {
        if (existsSync(join(inc, 'torch', 'csrc', 'api', 'include', 'torch', 'version.h'))) {
          return { how: 'system', include: [inc, join(inc, 'torch', 'csrc', 'api', 'include')], libdir };
        }
      }
    }
  }
  throw new Error(
    `ibq-native: libtorch was not found (tried: ${tried.join('; ')}). Fix it in one of three ways:\n` +
    '  1. set LIBTORCH to the root of an unpacked libtorch (or Torch_DIR / CMAKE_PREFIX_PATH to its share/cmake);\n' +
    '  2. install a Python torch package and set IBQ_PYTHON to that python (torch.utils.cmake_prefix_path is used);\n' +
    '  3. on Debian: apt-get install libtorch-dev libgloo-dev (or run scripts/setup as root).');
}

/** Whether this libtorch logs through glog (C10_USE_GLOG in its c10/macros/cmake_macros.h, as Debian's does). */
function usesGlog(include) {
  const h = join(include[0], 'c10', 'macros', 'cmake_macros.h');
  return existsSync(h) && /^#define C10_USE_GLOG/m.test(readFileSync(h, 'utf8'));
}

function version(include) {
  const h = join(include[1], 'torch', 'version.h');
  const text = readFileSync(h, 'utf8');
  const get = (k) => (new RegExp(`TORCH_VERSION_${k}\\s+(\\d+)`).exec(text) ?? [])[1];
  return { version: `${get('MAJOR')}.${get('MINOR')}.${get('PATCH')}`, versionHeader: h };
}

try {
  const t = discover();
  const what = process.argv[2] ?? 'json';
  const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
  if (existsSync(join(t.libdir, 'libtorch_cuda.so'))) libs.push('-ltorch_cuda', '-lc10_cuda');
  if (usesGlog(t.include)) libs.push('-lglog'); // native/ibq/core/logging.cpp initialises it
  const out = {
    include: t.include.join(' '),
    libdir: t.libdir,
    libs: [`-L${t.libdir}`, `-Wl,-rpath,${t.libdir}`, ...libs].join(' '),
    version: version(t.include).version,
  }[what];
  if (what === 'json') console.log(JSON.stringify({ ...t, ...version(t.include) }));
  else console.log(out);
} catch (e) {
  console.error(e.message);
  process.exit(1);
}

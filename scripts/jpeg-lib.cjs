#!/usr/bin/env node
// The static libjpeg-turbo for binding.gyp (the node-gyp build), found as CMakeLists.txt finds it: IBQ_JPEG_LIBRARY /
// IBQ_JPEG_INCLUDE_DIR, else the system's (Debian/Ubuntu: libjpeg62-turbo-dev / libjpeg-turbo8-dev). Like the cmake
// build, links a copy whose reference to stderr is renamed to ibq_jpeg_stderr (Debian's libjpeg.a is not
// position-independent; see CMakeLists.txt), written to build/libjpeg_ibq.a.
// Usage: node scripts/jpeg-lib.cjs include|libs
'use strict';
const { execFileSync } = require('node:child_process');
const { existsSync, mkdirSync, readFileSync } = require('node:fs');
const { join, resolve } = require('node:path');

const MULTIARCH = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch] ?? '';
const first = (paths) => paths.find((p) => p && existsSync(p));

function find() {
  const lib = first([process.env.IBQ_JPEG_LIBRARY, `/usr/lib/${MULTIARCH}/libjpeg.a`, '/usr/lib64/libjpeg.a', '/usr/lib/libjpeg.a', '/usr/local/lib/libjpeg.a']);
  const inc = first([process.env.IBQ_JPEG_INCLUDE_DIR, '/usr/include', '/usr/local/include'].filter((d) => d && existsSync(join(d, 'jpeglib.h'))));
  const config = inc && first([join(inc, 'jconfig.h'), join(inc, MULTIARCH, 'jconfig.h')]);
  if (!lib || !inc || !config || !/#define LIBJPEG_TURBO_VERSION /.test(readFileSync(config, 'utf8'))) {
    console.error('ibq-native: the static libjpeg-turbo library was not found (libjpeg.a and libjpeg-turbo\'s jpeglib.h / jconfig.h). ' +
      'On Debian/Ubuntu: apt-get install libjpeg62-turbo-dev (Ubuntu: libjpeg-turbo8-dev), or run scripts/setup as root; elsewhere set ' +
      'IBQ_JPEG_LIBRARY to a libjpeg-turbo libjpeg.a and IBQ_JPEG_INCLUDE_DIR to its headers.');
    process.exit(1);
  }
  return { lib, inc };
}

const { lib, inc } = find();
if (process.argv[2] === 'include') console.log(inc);
else if (process.argv[2] === 'libs') {
  const out = resolve(__dirname, '..', 'build', 'libjpeg_ibq.a');
  mkdirSync(resolve(out, '..'), { recursive: true });
  execFileSync('objcopy', ['--redefine-sym', 'stderr=ibq_jpeg_stderr', lib, out]);
  console.log(`${out} -Wl,--exclude-libs,libjpeg_ibq.a`);
} else {
  console.error('usage: node scripts/jpeg-lib.cjs include|libs');
  process.exit(2);
}

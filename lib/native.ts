/**
 * The only module that loads the native addon. It chooses the addon file (a build from source, else a prebuild
 * whose libtorch tag matches the libtorch found at run time: chooseAddon), checks the sidecar JSON written at build
 * time (the libtorch the addon was compiled against) before loading, wraps load failures in an actionable error,
 * and types it with the declarations of lib/addon/ (one file per native class). Everything else in lib/ imports
 * `native` (and those types) from here.
 */
import { createRequire } from 'node:module';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { abortError, IbqError } from './core/errors.js';
import { decideThreads, readThreadInputs } from './core/threads.js';
import { isMainThread } from 'node:worker_threads';

export type * from './addon/index.js';
import type { NativeAddon } from './addon/index.js';

/**
 * The sidecar JSON next to an addon (CMakeLists.txt writes build/Release/ibq-native.libtorch.json; scripts/prebuild
 * writes <prebuild>.json): the libtorch it was compiled against and the folder its RUNPATH names.
 */
interface Sidecar {
  version: string;
  libdir: string;
  versionHeader?: string;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * How to (re)build the addon of the package at `dir`: in a git checkout `npm run build`; in a package
 * installed as a dependency `npm rebuild ibq-native` from the project that depends on it (cmake-js is a
 * dependency, so that works there), after allowing its install script where npm blocks them by default.
 */
export function rebuildAdvice(dir: string): string {
  const checkout = existsSync(join(dir, '.git')) || !/[\\/]node_modules[\\/]/.test(dir);
  if (checkout) return `rebuild it with \`npm run build\` (or \`bash scripts/setup\`) in ${dir}`;
  const project = dir.slice(0, dir.lastIndexOf('node_modules')).replace(/[\\/]$/, '') || '.';
  return (
    `rebuild it with \`npm rebuild ibq-native\` in ${project} (npm 11 runs a dependency's install script only ` +
    'once allowed: `npm install-scripts approve ibq-native` first). The build needs cmake (or node-gyp), a C++17 ' +
    'compiler and libtorch (Debian: apt-get install libtorch-dev libgloo-dev; elsewhere set LIBTORCH)'
  );
}
const REBUILD = rebuildAdvice(root);

function headerVersion(file: string | undefined): string | undefined {
  if (!file || !existsSync(file)) return undefined;
  const text = readFileSync(file, 'utf8');
  const part = (p: string) => /(\d+)/.exec(text.split(`TORCH_VERSION_${p}`)[1] ?? '')?.[1];
  const [a, b, c] = [part('MAJOR'), part('MINOR'), part('PATCH')];
  return a && b && c ? `${a}.${b}.${c}` : undefined;
}

function readSidecar(path: string): Sidecar | undefined {
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as Partial<Sidecar>;
    return typeof j.version === 'string' && typeof j.libdir === 'string' ? (j as Sidecar) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The libtorch that an addon whose RUNPATH is `libdir` gets from the dynamic linker: the first folder holding
 * libtorch_cpu of LD_LIBRARY_PATH, `libdir`, the system's library folders. Its version comes from the library's
 * versioned file name (Debian: libtorch_cpu.so.1.13.0), else from the headers beside it (<dir>/../include, as in a
 * libtorch archive or a Python wheel), else from `versionHeader` when that folder is `libdir`.
 */
export function runtimeLibtorch(libdir: string, versionHeader?: string): { dir: string; version?: string } | undefined {
  const multiarch = process.arch === 'x64' ? 'x86_64-linux-gnu' : process.arch === 'arm64' ? 'aarch64-linux-gnu' : '';
  const system = [multiarch && `/usr/lib/${multiarch}`, multiarch && `/lib/${multiarch}`, '/usr/lib64', '/usr/lib', '/usr/local/lib'];
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':'), libdir, ...system].filter(Boolean);
  for (const dir of dirs) {
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => f === 'libtorch_cpu.so' || f.startsWith('libtorch_cpu.so.'));
    } catch {
      continue;
    }
    if (files.length === 0) continue;
    for (const f of files) {
      let real: string;
      try {
        real = realpathSync(join(dir, f));
      } catch {
        continue; // a dangling link
      }
      const m = /\.so\.(\d+\.\d+\.\d+)$/.exec(real);
      if (m) return { dir, version: m[1] };
    }
    const beside = headerVersion(join(dir, '..', 'include', 'torch', 'csrc', 'api', 'include', 'torch', 'version.h'));
    return { dir, version: beside ?? (dir === libdir ? headerVersion(versionHeader) : undefined) };
  }
  return undefined;
}

/** The file-name tag of a prebuild for libtorch `version`: ibq-native.libtorch-1_13_0.napi.glibc.node. */
export function libtorchTag(version: string): string {
  return `libtorch-${version.replace(/\./g, '_')}`;
}

/** The libtorch version a prebuild's file name names, or undefined without a libtorch tag. */
function taggedVersion(file: string): string | undefined {
  const tag = file.split('.').find((t) => /^libtorch-\d+(_\d+)*$/.test(t));
  return tag?.slice('libtorch-'.length).replace(/_/g, '.');
}

/** node-gyp-build's tag matching (platform-arch folders; napi, abi, libc, ... tags of the file names). */
interface NodeGypBuildTags {
  parseTuple(name: string): { name: string } | undefined;
  matchTuple(platform: string, arch: string): (t: unknown) => boolean;
  compareTuples(a: unknown, b: unknown): number;
  parseTags(file: string): { file: string } | undefined;
  matchTags(runtime: string, abi: string): (t: unknown) => boolean;
  compareTags(runtime: string): (a: unknown, b: unknown) => number;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The addon file to load from the package at `dir`, as node-gyp-build chooses it with one more rule:
 *   1. a build from source, build/Release/*.node (not with PREBUILDS_ONLY=1, node-gyp-build's variable), which must
 *      find the libtorch it was built against (else ERR_IBQ_ADDON naming both versions and how to rebuild);
 *   2. a prebuild, prebuilds/<platform>-<arch>/<name>.<tags>.node, whose node-gyp-build tags (napi, glibc, ...) fit
 *      this Node and whose libtorch tag (libtorch-1_13_0) names the version of the libtorch the dynamic linker will
 *      give it (runtimeLibtorch, from the folder its sidecar records); a prebuild for another libtorch, or with no
 *      libtorch tag, is never chosen;
 *   3. none: ERR_IBQ_ADDON "not built", naming the libtorch found and the prebuilds there, and how to build.
 */
export function chooseAddon(dir: string): { file: string; kind: 'build' | 'prebuild'; libtorch: string } {
  const advice = rebuildAdvice(dir);
  if (!process.env.PREBUILDS_ONLY) {
    const release = join(dir, 'build', 'Release');
    const built = listDir(release).find((f) => f.endsWith('.node'));
    if (built) {
      const sidecar = readSidecar(join(release, 'ibq-native.libtorch.json'));
      if (sidecar) {
        const now = runtimeLibtorch(sidecar.libdir, sidecar.versionHeader);
        if (!now) {
          throw new IbqError('ERR_IBQ_ADDON', `ibq-native was built against libtorch ${sidecar.version} in ${sidecar.libdir}, but no libtorch is there now; ${advice}`);
        }
        if (now.version && now.version !== sidecar.version) {
          throw new IbqError('ERR_IBQ_ADDON', `ibq-native was built against libtorch ${sidecar.version}, but libtorch ${now.version} is installed in ${now.dir}; ${advice}`);
        }
      }
      return { file: join(release, built), kind: 'build', libtorch: sidecar?.version ?? 'unknown' };
    }
  }
  const ngb = createRequire(import.meta.url)('node-gyp-build') as NodeGypBuildTags;
  const tuple = listDir(join(dir, 'prebuilds')).map(ngb.parseTuple).filter(ngb.matchTuple(process.platform, process.arch)).sort(ngb.compareTuples)[0];
  const folder = tuple ? join(dir, 'prebuilds', tuple.name) : undefined;
  const fitting = folder ? listDir(folder).map(ngb.parseTags).filter(ngb.matchTags('node', process.versions.modules)).sort(ngb.compareTags('node')) : [];
  const offered: string[] = [];
  let found: { dir: string; version?: string } | undefined;
  for (const t of fitting as { file: string }[]) {
    const version = taggedVersion(t.file);
    const sidecar = readSidecar(join(folder!, t.file.replace(/\.node$/, '.json')));
    if (!version || !sidecar || sidecar.version !== version) continue;
    offered.push(version);
    const now = runtimeLibtorch(sidecar.libdir, sidecar.versionHeader);
    found ??= now;
    if (now?.version === version) return { file: join(folder!, t.file), kind: 'prebuild', libtorch: version };
  }
  const where = found ? `libtorch ${found.version ?? '(version unknown)'} in ${found.dir}` : 'no libtorch';
  const prebuilt = offered.length ? ` and its prebuilt addons (for libtorch ${[...new Set(offered)].join(', ')}) do not fit ${where}` : '';
  throw new IbqError('ERR_IBQ_ADDON', `ibq-native: the native addon is not built${prebuilt}; ${advice}.`);
}

function load(): NativeAddon {
  const choice = chooseAddon(root);
  try {
    return createRequire(import.meta.url)(choice.file) as NativeAddon;
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new IbqError(
      'ERR_IBQ_ADDON',
      `ibq-native: the native addon ${choice.file} (${choice.kind === 'prebuild' ? 'prebuilt' : 'built'} for libtorch ${choice.libtorch}) failed to load: ${msg}; ${REBUILD}`,
    );
  }
}

/** `fn` (called on `self`) with the caller's stack put into the errors of the Promise it returns. */
function stackedCall(fn: (...a: unknown[]) => unknown, self: unknown): (...a: unknown[]) => unknown {
  const wrapped = (...args: unknown[]) => {
    const r = fn.apply(self, args);
    if (!(r instanceof Promise)) return r;
    const site: { stack?: string } = {};
    Error.captureStackTrace(site, wrapped);
    return r.catch((err: unknown) => {
      throw withStack(ownError(err), site.stack);
    });
  };
  return wrapped;
}

/** A native job's error as lib/ makes it: a job stopped by its abort flag rejects with abortError() (the one aborted error). */
function ownError(err: unknown): unknown {
  return (err as { code?: unknown })?.code === 'ERR_IBQ_ABORTED' ? abortError() : err;
}

/** `err` with the frames of `stack` (a captured call site) in place of its own; other values as they are. */
export function withStack(err: unknown, stack: string | undefined): unknown {
  if (err instanceof Error && stack) {
    const head = err.stack?.split('\n    at ')[0] ?? `${err.name}: ${err.message}`;
    err.stack = head + stack.slice(stack.indexOf('\n'));
  }
  return err;
}

/**
 * Errors of native jobs are made on the JS thread when the job settles, so their stack shows no caller. The
 * exported functions (and those of exported namespaces) that return a Promise get the stack of the call that
 * started them, captured at the call as sharp does; model handles get the same through callerStacks().
 */
function withCallerStacks(addon: NativeAddon): NativeAddon {
  // classes (constructors with methods) stay as they are: their handles are wrapped by callerStacks()
  const isPlainFunction = (v: unknown): v is (...a: unknown[]) => unknown =>
    typeof v === 'function' && Object.getOwnPropertyNames((v as { prototype?: object }).prototype ?? {}).length <= 1;
  const wrapFunctions = (o: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(o)) if (isPlainFunction(v)) o[k] = stackedCall(v, o);
  };
  const obj = addon as unknown as Record<string, unknown>;
  wrapFunctions(obj);
  for (const v of Object.values(obj)) {
    if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) wrapFunctions(v as Record<string, unknown>);
  }
  return addon;
}

/**
 * A view of a native handle whose Promise-returning methods put the caller's stack into their errors (the
 * classes' own methods cannot be replaced: Node-API defines them read-only). Calls reach the handle itself.
 */
export function callerStacks<H extends object>(handle: H): H {
  const cache = new Map<PropertyKey, unknown>();
  return new Proxy(handle, {
    get(target, key) {
      const v = Reflect.get(target, key, target);
      if (typeof v !== 'function') return v;
      let w = cache.get(key);
      if (!w) cache.set(key, (w = stackedCall(v as (...a: unknown[]) => unknown, target)));
      return w;
    },
  });
}

export const native: NativeAddon = withCallerStacks(load());

// Our jobs' default thread count: the CPUs this process may use (affinity, cgroup quota), divided under `ibq launch`
// (lib/core/threads.ts). Applied once per process; setNumThreads / --threads replace it.
{
  const d = decideThreads(readThreadInputs());
  native.setNumThreads(d.threads, d.source, d.reason);
}

// process.exit() and uncaught exceptions end the main thread without the environment's cleanup hooks and
// then run exit(), which destroys libtorch's static objects: a job still running on an addon worker would
// crash the process (double free, SIGSEGV). 'exit' is the last moment JS runs: stop and await the jobs
// here. (worker_threads also get the addon's cleanup hook, which does the same when the thread ends.)
process.once('exit', () => native.shutdown(isMainThread));

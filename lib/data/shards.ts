/**
 * WebDataset tar shards, file level: shard specs (`shards/train-{000000..000127}.tar`: brace ranges and lists,
 * then globs), samples as groups of adjacent tar members sharing a key (`<key>.<ext>`, WebDataset's rule: the key is
 * the member path up to the first dot of its base name), reading a shard from a given sample on (tar-stream), the
 * sample count of each shard (from the `shards.json` index `ibq shard` writes, else by reading the shard), and
 * writing shards. The dataset built on this (epochs, ranks, shuffle buffer) is lib/data/webdataset.ts.
 */
import { createReadStream, createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

import tar from 'tar-stream';
import { globSync } from 'tinyglobby';

/** Image members of a sample, in the order of preference when a sample holds several. */
export const SHARD_IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp'] as const;
/** The index of sample counts `ibq shard` writes beside its shards. */
export const SHARD_INDEX_FILE = 'shards.json';
const INDEX_FORMAT = 'ibq-webdataset-index/1';

/** One sample of a shard: its key, the image member's bytes and extension, and its label (undefined when none). */
export interface ShardSample {
  key: string;
  /** Position of the sample in its shard (0-based, counting samples that hold an image). */
  index: number;
  ext: string;
  image: Buffer;
  label?: number;
}

const SHARD_NAME = /\.(tar|tgz|tar\.gz)$/i;

/** True when `spec` names tar shards (its last item ends in .tar, .tgz or .tar.gz, braces and globs allowed). */
export function isShardSpec(spec: string): boolean {
  return SHARD_NAME.test(spec.replace(/\}$/, '').split(/[{,]/).pop()!) || SHARD_NAME.test(spec);
}

/**
 * Expands braces as bash and WebDataset's braceexpand do: `{a,b}` lists and `{000..127}` ranges (zero padding kept
 * from the wider end; a step as `{0..10..2}`), nested and several per spec, left to right.
 * @throws RangeError naming `name` for an unbalanced brace or a range of more than 10^7 items
 */
export function expandBraces(spec: string, name = 'data'): string[] {
  const open = spec.indexOf('{');
  if (open < 0) {
    if (spec.includes('}')) throw new RangeError(`${name}: unbalanced '}' in ${JSON.stringify(spec)}`);
    return [spec];
  }
  let depth = 0;
  let close = -1;
  const commas: number[] = [];
  for (let i = open; i < spec.length; i++) {
    if (spec[i] === '{') depth++;
    else if (spec[i] === '}' && --depth === 0) {
      close = i;
      break;
    } else if (spec[i] === ',' && depth === 1) commas.push(i);
  }
  if (close < 0) throw new RangeError(`${name}: unbalanced '{' in ${JSON.stringify(spec)}`);
  const head = spec.slice(0, open);
  const body = spec.slice(open + 1, close);
  const tails = expandBraces(spec.slice(close + 1), name);
  let items: string[];
  const range = /^(-?\d+)\.\.(-?\d+)(?:\.\.(\d+))?$/.exec(body);
  if (commas.length > 0) {
    const cuts = [open, ...commas, close];
    items = cuts.slice(0, -1).flatMap((c, k) => expandBraces(spec.slice(c + 1, cuts[k + 1]), name));
  } else if (range) {
    const [a, b] = [Number(range[1]), Number(range[2])];
    const stepBy = Number(range[3] ?? 1) || 1;
    const count = Math.floor(Math.abs(b - a) / stepBy) + 1;
    if (count > 1e7) throw new RangeError(`${name}: the range {${body}} holds ${count} items (at most 10^7)`);
    const width = /^-?0\d/.test(range[1]!) || /^-?0\d/.test(range[2]!) ? Math.max(range[1]!.length, range[2]!.length) : 0;
    const dir = b >= a ? 1 : -1;
    items = Array.from({ length: count }, (_, k) => String(a + dir * k * stepBy).padStart(width, '0'));
  } else {
    items = [`{${body}}`]; // not a list nor a range: literal, as bash leaves it
  }
  return items.flatMap((it) => tails.map((t) => head + it + t));
}

/**
 * The shard files of `spec`: braces expanded, then each item taken as a path or, when it holds glob characters
 * (`*`, `?`, `[`), as a glob (sorted matches). Order: the spec's, duplicates dropped.
 * @throws Error naming the spec and the first item that matches no file
 */
export function expandShardSpec(spec: string, name = 'data'): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const item of expandBraces(spec, name)) {
    const files = /[*?[]/.test(item) ? globSync(item, { absolute: false, expandDirectories: false }).sort() : existsSync(item) ? [item] : [];
    if (files.length === 0) throw new Error(`${name}: ${JSON.stringify(item)} (from ${JSON.stringify(spec)}) matches no shard file`);
    for (const f of files) {
      if (!seen.has(f)) out.push(f);
      seen.add(f);
    }
  }
  return out;
}

/** WebDataset's split of a member name into key and extension (the extension lower-cased; '' when none). */
export function splitMemberName(name: string): { key: string; ext: string } {
  const slash = name.lastIndexOf('/') + 1;
  const dot = name.indexOf('.', slash);
  return dot < 0 ? { key: name, ext: '' } : { key: name.slice(0, dot), ext: name.slice(dot + 1).toLowerCase() };
}

function parseLabel(ext: string, bytes: Buffer): number | undefined {
  const text = bytes.toString('utf8').trim();
  if (ext === 'cls') {
    const n = Number(text);
    return Number.isInteger(n) ? n : undefined;
  }
  try {
    const j = JSON.parse(text) as unknown;
    if (Number.isInteger(j)) return j as number;
    const o = (j ?? {}) as Record<string, unknown>;
    const v = o.label ?? o.cls ?? o.class;
    return Number.isInteger(v) ? (v as number) : undefined;
  } catch {
    return undefined;
  }
}

interface Group {
  key: string;
  hasImage: boolean;
  members: Map<string, Buffer>;
}

/** Turns a key's members into a sample, or undefined when it holds no image. */
function toSample(g: Group, index: number): ShardSample | undefined {
  const ext = SHARD_IMAGE_EXTENSIONS.find((e) => g.members.has(e));
  if (!ext) return undefined;
  const cls = g.members.get('cls');
  const json = g.members.get('json');
  const label = cls ? parseLabel('cls', cls) : json ? parseLabel('json', json) : undefined;
  return { key: g.key, index, ext, image: g.members.get(ext)!, label };
}

const isImageExt = (ext: string) => (SHARD_IMAGE_EXTENSIONS as readonly string[]).includes(ext);
const WANTED = new Set<string>([...SHARD_IMAGE_EXTENSIONS, 'cls', 'json']);

/**
 * The groups of shard `path` (adjacent members sharing a key), in tar order; `keep(index)` says whether the members
 * of the sample with that index (samples: groups holding an image) are read into memory or only read past.
 */
async function* groups(path: string, keep: (index: number) => boolean, signal?: AbortSignal): AsyncGenerator<{ group: Group; index: number }> {
  const extract = tar.extract();
  const source = createReadStream(path);
  const done = pipeline((/\.tar$/i.test(path) ? [source, extract] : [source, createGunzip(), extract]) as never);
  done.catch(() => undefined);
  let group: Group | undefined;
  let index = 0;
  try {
    for await (const entry of extract) {
      if (signal?.aborted) return;
      const h = entry.header;
      const { key, ext } = splitMemberName(h.name);
      if (group && group.key !== key) {
        yield { group, index };
        if (group.hasImage) index++;
        group = undefined;
      }
      group ??= { key, hasImage: false, members: new Map() };
      const file = h.type === 'file' || h.type === 'contiguous-file';
      if (file && isImageExt(ext)) group.hasImage = true;
      if (file && WANTED.has(ext) && keep(index)) {
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        group.members.set(ext, Buffer.concat(chunks));
      } else {
        entry.resume();
        for await (const _ of entry) void _;
      }
    }
    if (group) yield { group, index };
    await done;
  } catch (err) {
    throw new Error(`${path}: not a readable tar shard: ${(err as Error).message}`, { cause: err });
  } finally {
    source.destroy();
  }
}

/**
 * The samples of shard `path` from sample `from` on (0-based), in tar order. Members of earlier samples and members
 * that are neither an image nor a label are read past, not kept. `signal` stops the reading (the generator returns).
 * @throws Error naming the shard when it is not a readable tar file
 */
export async function* readShard(path: string, from = 0, opts: { signal?: AbortSignal } = {}): AsyncGenerator<ShardSample> {
  for await (const { group, index } of groups(path, (i) => i >= from, opts.signal)) {
    if (!group.hasImage || index < from) continue;
    const s = toSample(group, index);
    if (s) yield s;
  }
}

/** The keys of the samples (member groups holding an image) of shard `path`, in tar order (nothing kept in memory). */
export async function shardKeys(path: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const { group } of groups(path, () => false)) if (group.hasImage) keys.push(group.key);
  return keys;
}

interface IndexFile {
  format: string;
  shards: Record<string, { bytes: number; samples: number }>;
  /** Class names by label, when the shards were written from class folders. */
  classes?: string[];
}

function readIndex(dir: string): IndexFile | undefined {
  const p = join(dir, SHARD_INDEX_FILE);
  if (!existsSync(p)) return undefined;
  try {
    const j = JSON.parse(readFileSync(p, 'utf8')) as IndexFile;
    return j.format === INDEX_FORMAT && j.shards && typeof j.shards === 'object' ? j : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The sample count of shard `path` as the `shards.json` beside it records it (when its byte size matches), else
 * undefined (the caller reads the shard: shardKeys).
 */
export function indexedCount(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  const e = readIndex(dirname(path))?.shards[basename(path)];
  return e && e.bytes === statSync(path).size ? e.samples : undefined;
}

/** One sample to write: key (no dot in its base name), image bytes and extension, label and extra JSON fields. */
export interface SampleToWrite {
  key: string;
  ext: string;
  image: Buffer;
  label: number;
  json?: Record<string, unknown>;
}

/** Writes one shard: per sample `<key>.<ext>`, `<key>.cls` (the label) and `<key>.json` (label and `json`). Returns its byte size. */
export async function writeShard(path: string, samples: SampleToWrite[]): Promise<number> {
  const pack = tar.pack();
  const out = pipeline(pack, createWriteStream(path));
  const mtime = new Date(0); // reproducible shards
  for (const s of samples) {
    if (splitMemberName(`${s.key}.x`).key !== s.key) throw new RangeError(`key: ${JSON.stringify(s.key)} has a dot in its base name`);
    pack.entry({ name: `${s.key}.${s.ext}`, mtime, mode: 0o644 }, s.image);
    pack.entry({ name: `${s.key}.cls`, mtime, mode: 0o644 }, `${s.label}\n`);
    pack.entry({ name: `${s.key}.json`, mtime, mode: 0o644 }, JSON.stringify({ label: s.label, ...s.json }) + '\n');
  }
  pack.finalize();
  await out;
  return statSync(path).size;
}

/** The `shards.json` index text for shards written into one folder. */
export function indexText(shards: { name: string; bytes: number; samples: number }[], classes?: string[]): string {
  const index: IndexFile = { format: INDEX_FORMAT, shards: Object.fromEntries(shards.map((s) => [s.name, { bytes: s.bytes, samples: s.samples }])), ...(classes ? { classes } : {}) };
  return JSON.stringify(index, null, 1) + '\n';
}

/** The class names the `shards.json` beside `path` records (undefined when none). */
export function indexedClasses(path: string): string[] | undefined {
  const c = readIndex(dirname(path))?.classes;
  return Array.isArray(c) && c.every((x) => typeof x === 'string') ? c : undefined;
}

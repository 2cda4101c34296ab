/** File helpers shared by the loaders and writers: atomic writes, bounded reads, error naming. */
import { open, rename, unlink, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

import { checkString } from '../errors.js';

/** Re-throws `err` as an Error that names `path` (keeps TypeError/RangeError classes). */
export function withPath(path: string, err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  if (e.message.includes(path)) return e;
  const msg = `${path}: ${e.message.split('\n').slice(0, 6).join('\n')}`;
  const Cls = e instanceof RangeError ? RangeError : e instanceof TypeError ? TypeError : Error;
  return new Cls(msg, { cause: e });
}

/** Size of a regular file; a clear Error when it is missing or not a file. */
export async function fileSize(path: unknown, arg = 'path'): Promise<number> {
  checkString(path, arg);
  let st;
  try {
    st = await stat(path as string);
  } catch (err) {
    throw withPath(path as string, err);
  }
  if (!st.isFile()) throw new Error(`${path}: not a regular file`);
  return st.size;
}

/** Reads `length` bytes at `position` (fewer at the end of the file). */
export async function readRange(path: string, position: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === length ? buf : buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

/**
 * Writes a file atomically: `write(tmp)` fills a temporary file in the same folder (named
 * `<stem>.tmp-<random>`, so a torch archive written there gets the final file's stem as its folder),
 * which must be fsynced by `write`; then it is renamed over `path` and the folder is fsynced. On failure
 * the temporary file is removed and an earlier `path` stays intact.
 */
export async function writeAtomic(path: string, write: (tmp: string) => Promise<void>): Promise<void> {
  checkString(path, 'path');
  const dir = dirname(path);
  const stem = basename(path, extname(path));
  const tmp = join(dir, `${stem}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await write(tmp);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw withPath(path, err);
  }
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // some file systems cannot fsync a folder; the rename itself is done
  }
}

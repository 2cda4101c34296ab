/** File helpers shared by the loaders and writers: atomic writes, bounded reads, error naming. */
import { constants } from 'node:fs';
import { access, open, rename, unlink, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

import { checkString, withCode } from '../core/errors.js';

/** Re-throws `err` as an Error that names `path` (keeps TypeError/RangeError classes). */
export function withPath(path: string, err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  if (e.message.includes(path)) return e;
  const msg = `${path}: ${e.message.split('\n').slice(0, 6).join('\n')}`;
  const Cls = e instanceof RangeError ? RangeError : e instanceof TypeError ? TypeError : Error;
  return new Cls(msg, { cause: e });
}

/**
 * withPath for the readers of checkpoint, safetensors and numpy files: a file that cannot be parsed gets the
 * code ERR_IBQ_BAD_CHECKPOINT (argument errors, TypeError / RangeError, and errors that carry a code already,
 * e.g. ENOENT, keep theirs).
 */
export function badFile(path: string, err: unknown): Error {
  const e = withPath(path, err);
  return e instanceof TypeError || e instanceof RangeError ? e : withCode(e, 'ERR_IBQ_BAD_CHECKPOINT');
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
 * Checks that `path` may be (re)written as a file: when it exists it must be a regular file with a write
 * permission bit set (a read-only file is never replaced silently, even by root, for whom rename ignores
 * the file's mode). `arg` names the option in messages (e.g. '--out').
 * @throws Error naming the path when it is a directory, not a regular file, or read-only
 */
export async function checkWritableTarget(path: string, arg = 'path'): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw withPath(path, err);
  }
  if (st.isDirectory()) throw new Error(`${arg}: ${path} is a directory; expected a file path`);
  if (!st.isFile()) throw new Error(`${arg}: ${path} exists and is not a regular file`);
  if ((st.mode & 0o222) === 0) throw new Error(`${arg}: ${path} is read-only; refusing to overwrite it (make it writable or choose another path)`);
  try {
    await access(path, constants.W_OK);
  } catch {
    throw new Error(`${arg}: ${path} is not writable by this user; refusing to overwrite it`);
  }
}

/** Whether two paths name the same existing file (same device and inode, so links and `./x` vs `x` match). */
export async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([stat(a), stat(b)]);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/**
 * Writes a file atomically (after checkWritableTarget: an existing directory or read-only file is refused): `write(tmp)` fills a temporary file in the same folder (named
 * `<stem>.tmp-<random>`, so a torch archive written there gets the final file's stem as its folder),
 * which must be fsynced by `write`; then it is renamed over `path` and the folder is fsynced. On failure
 * the temporary file is removed and an earlier `path` stays intact.
 */
export async function writeAtomic(path: string, write: (tmp: string) => Promise<void>): Promise<void> {
  checkString(path, 'path');
  await checkWritableTarget(path);
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

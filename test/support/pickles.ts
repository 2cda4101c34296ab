/** Hand-made pickles and torch.save-style zip archives for the bad-input and fuzz tests. */
import { writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';

import yazl from 'yazl';

type Part = number[] | Buffer;
export const P = {
  proto: [0x80, 2], stop: [0x2e], mark: [0x28], tuple: [0x74], emptyDict: [0x7d], emptyList: [0x5d], emptyTuple: [0x29],
  setitem: [0x73], append: [0x61], reduce: [0x52], binpersid: [0x51], newfalse: [0x89], none: [0x4e],
};
export const str = (s: string): Buffer => {
  const b = Buffer.from(s, 'utf8');
  const h = Buffer.alloc(5);
  h[0] = 0x58;
  h.writeUInt32LE(b.length, 1);
  return Buffer.concat([h, b]);
};
export const glob = (m: string, n: string): Buffer => Buffer.from(`c${m}\n${n}\n`, 'latin1');
export const int = (n: number | bigint): Buffer => Buffer.from(`I${n}\n`, 'latin1');
export const tup = (...items: Part[]): Buffer => cat(P.mark, ...items, P.tuple);
export const cat = (...parts: Part[]): Buffer => Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));

/** A protocol-2 pickle of {'w': tensor} viewing storage '0' (float32, `numel` elements). */
export function tensorPickle(numel: number | bigint, size: number[], stride: number[], offset = 0, storageKey = '0'): Buffer {
  const pid = tup(str('storage'), glob('torch', 'FloatStorage'), str(storageKey), str('cpu'), int(numel));
  return cat(
    P.proto, P.emptyDict, str('w'),
    glob('torch._utils', '_rebuild_tensor_v2'),
    P.mark, pid, P.binpersid, int(offset), tup(...size.map(int)), tup(...stride.map(int)), P.newfalse,
    glob('collections', 'OrderedDict'), P.emptyTuple, P.reduce, P.tuple, P.reduce,
    P.setitem, P.stop,
  );
}

/** Writes a torch.save-layout zip: archive/data.pkl, archive/data/<k> records, archive/version. */
export function writeTorchZip(path: string, pkl: Buffer, records: Record<string, Buffer> = {}, version = '3\n'): Promise<void> {
  const zip = new yazl.ZipFile();
  const opts = { compress: false, mtime: new Date(1980, 0, 1) };
  zip.addBuffer(pkl, 'archive/data.pkl', opts);
  for (const [k, v] of Object.entries(records)) zip.addBuffer(v, `archive/data/${k}`, opts);
  if (version) zip.addBuffer(Buffer.from(version), 'archive/version', opts);
  zip.end();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('error', reject);
    zip.outputStream.on('end', () => {
      writeFileSync(path, Buffer.concat(chunks));
      resolve();
    });
  });
}

/** Where the data.pkl bytes of a (small, non-zip64) torch zip lie, and where its two CRC fields are. */
export function locatePickle(zip: Buffer): { start: number; end: number; crcFields: number[] } {
  if (zip.readUInt32LE(0) !== 0x04034b50) throw new Error('not a zip');
  const nameLen = zip.readUInt16LE(26);
  const extraLen = zip.readUInt16LE(28);
  const name = zip.toString('latin1', 30, 30 + nameLen);
  if (!name.endsWith('data.pkl')) throw new Error('data.pkl is not the first record');
  const start = 30 + nameLen + extraLen;
  const end = start + zip.readUInt32LE(18);
  const central = zip.indexOf(Buffer.concat([Buffer.from([0x50, 0x4b, 0x01, 0x02])]), end);
  let cd = central;
  while (cd >= 0 && zip.toString('latin1', cd + 46, cd + 46 + zip.readUInt16LE(cd + 28)) !== name) cd = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), cd + 4);
  if (cd < 0) throw new Error('no central entry for data.pkl');
  return { start, end, crcFields: [14, cd + 16] };
}

/** Recomputes the CRC-32 of data.pkl after its bytes were changed in place. */
export function fixPickleCrc(zip: Buffer, at: { start: number; end: number; crcFields: number[] }): void {
  const c = crc32(zip.subarray(at.start, at.end));
  for (const f of at.crcFields) zip.writeUInt32LE(c >>> 0, f);
}

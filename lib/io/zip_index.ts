/**
 * The central directory of a zip file (yauzl): record names with their sizes and compression, read
 * without touching the records' data. Used to check torch.save archives before native code reads their
 * records (a corrupt size must fail here, not become a huge allocation), and to read .npz members.
 */
import yauzl from 'yauzl';

export interface ZipEntryInfo {
  name: string;
  compressedSize: number;
  uncompressedSize: number;
  /** 0: stored, 8: deflate. */
  method: number;
}

export function openZip(path: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: false, decodeStrings: true, strictFileNames: false }, (err, zf) =>
      err || !zf ? reject(err ?? new Error('cannot open')) : resolve(zf),
    );
  });
}

/** Every entry of the archive, in central-directory order, with its yauzl entry (for reading data). */
export function zipEntries(zf: yauzl.ZipFile): Promise<[ZipEntryInfo, yauzl.Entry][]> {
  return new Promise((resolve, reject) => {
    const out: [ZipEntryInfo, yauzl.Entry][] = [];
    zf.on('entry', (e: yauzl.Entry) => {
      out.push([
        {
          name: e.fileName,
          compressedSize: e.compressedSize,
          uncompressedSize: e.uncompressedSize,
          method: e.compressionMethod,
        },
        e,
      ]);
      zf.readEntry();
    });
    zf.once('end', () => resolve(out));
    zf.on('error', reject);
    zf.readEntry();
  });
}

/** Reads one (stored or deflated) member fully; its declared size is checked against `limit` first. */
export function readZipEntry(zf: yauzl.ZipFile, e: yauzl.Entry, limit: number): Promise<Buffer> {
  if (e.uncompressedSize > limit) {
    return Promise.reject(new Error(`member ${e.fileName} declares ${e.uncompressedSize} bytes (more than ${limit})`));
  }
  return new Promise((resolve, reject) => {
    zf.openReadStream(e, (err, stream) => {
      if (err || !stream) return reject(err ?? new Error('cannot read'));
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', reject);
      stream.on('end', () => resolve(Buffer.concat(chunks)));
    });
  });
}

/** The name -> info table of a zip file (closes it). */
export async function zipIndex(path: string): Promise<Map<string, ZipEntryInfo>> {
  const zf = await openZip(path);
  try {
    return new Map((await zipEntries(zf)).map(([info]) => [info.name, info]));
  } finally {
    zf.close();
  }
}

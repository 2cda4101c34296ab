/**
 * Images a training run could not use: each one named as it is met (a path, or shard and key, and why), counted for
 * the log and the summary, and a limit beyond which the run stops (`maxBadImages`, CLI `--max-bad-images`).
 */
import { checkInt, IbqError } from '../core/errors.js';

/** What onBadImage receives. */
export interface BadImageInfo {
  /** The file path, or `<shard>:<key>.<ext>` for a sample of a tar shard. */
  name: string;
  /** Why it was refused (the decoder's message, first line). */
  reason: string;
  /** Bad images met so far by this process, this one included. */
  count: number;
}

/** Options of the datasets that decode images. */
export interface BadImageOptions {
  /**
   * Bad images (undecodable, or larger than maxPixels) a process may skip before the run stops with IbqError
   * ERR_IBQ_BAD_IMAGE (default: 0.1% of the training samples, at least 10).
   */
  maxBadImages?: number;
  /** Called for each bad image as it is met (default: one line on stderr naming it). */
  onBadImage?(info: BadImageInfo): void;
}

/** The default limit for `samples` training samples: 0.1%, at least 10. */
export function defaultMaxBadImages(samples: number): number {
  return Math.max(10, Math.ceil(samples / 1000));
}

/** Counts and reports the bad images of one dataset. */
export class BadImages {
  count = 0;
  readonly limit: number;
  readonly #report: (info: BadImageInfo) => void;
  constructor(samples: number, opts: BadImageOptions = {}) {
    this.limit = opts.maxBadImages === undefined ? defaultMaxBadImages(samples) : checkInt(opts.maxBadImages, 'maxBadImages', 0);
    if (opts.onBadImage !== undefined && typeof opts.onBadImage !== 'function') throw new TypeError('onBadImage: expected a function');
    this.#report = opts.onBadImage ?? ((i) => console.error(`ibq: bad image ${i.name}: ${i.reason} (skipped; ${i.count} so far)`));
  }

  /**
   * Records one bad image.
   * @throws IbqError ERR_IBQ_BAD_IMAGE when the count exceeds the limit, naming the image and the limit
   */
  add(name: string, err: unknown): void {
    this.count++;
    const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.replace(/^.*?: not a decodable/, 'not a decodable');
    this.#report({ name, reason, count: this.count });
    if (this.count > this.limit) {
      throw new IbqError('ERR_IBQ_BAD_IMAGE',
        `${this.count} bad images, more than maxBadImages (--max-bad-images) ${this.limit}; the last: ${name}: ${reason}. ` +
        'Fix or remove them, or raise the limit', { cause: err });
    }
  }
}

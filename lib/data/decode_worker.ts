/**
 * A decode worker thread of DecodePool (lib/data/workers.ts): decodes and augments images with decodeImage (the
 * package's one image pipeline; files read synchronously, JPEGs decoded on this thread) and sends back the float32
 * pixels, transferred, not copied.
 */
import { parentPort } from 'node:worker_threads';

import sharp from 'sharp';

import { decodeImageInWorker, type Crop } from './images.js';

// The parallelism is across images, one per worker: each pipeline runs on one libvips thread, and libvips' operation
// cache (which only costs here: no image is decoded twice) is off. Both are process-wide settings of sharp/libvips.
sharp.concurrency(1);
sharp.cache(false);

interface Job {
  id: number;
  input: string | Uint8Array;
  size: number;
  crop: Crop;
  maxPixels?: number;
  /** The image's place in a batch on a SharedArrayBuffer: the pixels are written there, not sent back. */
  out?: Float32Array;
}

parentPort!.on('message', (job: Job) => {
  decodeImageInWorker(job.input, job.size, job.crop, job.maxPixels === undefined ? undefined : { maxPixels: job.maxPixels }, job.out).then(
    (px) => (job.out ? parentPort!.postMessage({ id: job.id }) : parentPort!.postMessage({ id: job.id, px }, [px.buffer as ArrayBuffer])),
    (err: Error & { code?: string }) => parentPort!.postMessage({ id: job.id, error: { message: err.message, code: err.code, name: err.name } }),
  );
});

/**
 * A decode worker thread of DecodePool (lib/data/workers.ts): decodes and augments images with decodeImage (the
 * package's one image pipeline) and sends back the float32 pixels, transferred, not copied.
 */
import { parentPort } from 'node:worker_threads';

import sharp from 'sharp';

import { decodeImage, type Crop } from './images.js';

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
}

parentPort!.on('message', (job: Job) => {
  decodeImage(job.input, job.size, job.crop, 0, job.maxPixels === undefined ? undefined : { maxPixels: job.maxPixels }).then(
    (px) => parentPort!.postMessage({ id: job.id, px }, [px.buffer as ArrayBuffer]),
    (err: Error & { code?: string }) => parentPort!.postMessage({ id: job.id, error: { message: err.message, code: err.code, name: err.name } }),
  );
});

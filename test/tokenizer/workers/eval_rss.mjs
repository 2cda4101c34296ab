// Child of test/tokenizer/attention_blocks.test.ts: evaluates a tokenizer trained at 32 px (one downsampling, random
// weights) on the images given at 256 px, then prints the metrics and the peak RSS (VmHWM) as JSON.
import { readFileSync } from 'node:fs';

import { evaluateTokenizer, Tokenizer } from '../../../dist/index.js';

const [cfg, ...files] = process.argv.slice(2);
const tok = Tokenizer.create(JSON.parse(cfg), { seed: 3 }).eval();
const t0 = performance.now();
const m = await evaluateTokenizer({ tokenizer: tok, data: files, imageSize: 256, batchSize: files.length });
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1];
console.log(JSON.stringify({ psnr: m.psnr, ssim: m.ssim, used: m.usedCodes, peakMB: Number(hwm) / 1024, seconds: (performance.now() - t0) / 1000 }));
process.exit(0);

// Micro-batching of a shared tokenizer (TokenizerBatcher, issue 21 item 3): concurrent calls within the window
// run as one native call; indices identical to separate calls, decoded pixels within 1e-5; a bad input fails
// only its own call; an aborted call leaves its batch.
import { describe, expect, it } from 'vitest';

import { tensor, TokenizerBatcher, type Tensor } from '../../dist/index.js';
import { fixtureTokenizer } from '../support/ar_tiny.js';
import { HAVE_FIXTURES } from '../support/fixtures.js';
import { patternPng } from '../serve/support.js';

const ints = (t: Tensor) => Array.from(t.dataSync() as BigInt64Array, Number);

describe.skipIf(!HAVE_FIXTURES)('TokenizerBatcher', () => {
  it('batches concurrent encodeImages / decode / decodePixels: same indices, pixels within 1e-5', async () => {
    const tok = await fixtureTokenizer();
    const b = new TokenizerBatcher(tok, { windowMs: 50, maxBatch: 16 });
    const pngs = await Promise.all(Array.from({ length: 6 }, (_, k) => patternPng(k)));
    const separate = [];
    for (const p of pngs) separate.push(await tok.encodeImages([p], { imageSize: 32 }));
    // count the native calls: concurrent calls share one
    let calls = 0;
    const encode = tok.encode.bind(tok);
    tok.encode = ((x: Tensor, o?: object) => (calls++, encode(x, o))) as typeof tok.encode;
    const batched = await Promise.all(pngs.map((p) => b.encodeImages([p], { imageSize: 32 })));
    // the uploads are decoded (sharp) before they join: on a loaded machine some may come after the window
    expect(calls).toBeLessThan(pngs.length);
    for (const [i, r] of batched.entries()) {
      expect(r.indices.shape).toEqual([1, 16, 16]);
      expect(ints(r.indices)).toEqual(ints(separate[i]!.indices));
      expect(Array.from(r.images.dataSync())).toEqual(Array.from(separate[i]!.images.dataSync()));
    }
    let decodes = 0;
    const decode = tok.decode.bind(tok);
    tok.decode = ((x: Tensor, o?: object) => (decodes++, decode(x, o))) as typeof tok.decode;
    const dec = await Promise.all(separate.map((s) => b.decode(s.indices)));
    expect(decodes, 'calls made in one tick share one native call').toBe(1);
    tok.decode = decode;
    const pix = await Promise.all(separate.map((s) => b.decodePixels(s.indices)));
    for (const [i, s] of separate.entries()) {
      const alone = (await tok.decode(s.indices)).dataSync() as Float32Array;
      const got = dec[i]!.dataSync() as Float32Array;
      expect(dec[i]!.shape).toEqual([1, 3, 32, 32]);
      let worst = 0;
      for (let k = 0; k < alone.length; k++) worst = Math.max(worst, Math.abs(alone[k]! - got[k]!));
      expect(worst).toBeLessThanOrEqual(1e-5);
      expect(pix[i]!.shape).toEqual([1, 32, 32, 3]);
      const px = Array.from((await tok.decodePixels(s.indices)).dataSync() as Uint8Array);
      const bp = Array.from(pix[i]!.dataSync() as Uint8Array);
      expect(bp.filter((v, k) => Math.abs(v - px[k]!) > 1)).toHaveLength(0);
    }
    tok.dispose();
  });

  it('a bad input fails only its own call; an aborted call leaves the batch; options are checked', async () => {
    const tok = await fixtureTokenizer();
    const b = new TokenizerBatcher(tok, { windowMs: 5 });
    const good = await patternPng(1);
    const ac = new AbortController();
    const calls = [
      b.encodeImages([good], { imageSize: 32 }),
      b.encodeImages([Buffer.from('not an image')], { imageSize: 32 }),
      b.encodeImages([good], { imageSize: 32, signal: ac.signal }),
      b.decode(tensor(new BigInt64Array(256).fill(9999n), [1, 16, 16])),
      b.decode(tensor(new BigInt64Array(256).fill(3n), [1, 16, 16])),
    ];
    ac.abort();
    const r = await Promise.allSettled(calls);
    expect(r.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected', 'fulfilled']);
    expect((r[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_IBQ_BAD_IMAGE' });
    expect((r[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_IBQ_ABORTED' });
    expect(() => new TokenizerBatcher(tok, { windowMs: 100 })).toThrow(/opts.windowMs/);
    expect(() => new TokenizerBatcher(tok, { maxBatch: 0 })).toThrow(/opts.maxBatch/);
    await expect(b.decode(tensor([1, 2], [2]))).rejects.toThrow(/indices: expected an int64 Tensor/);
    tok.dispose();
  });
});

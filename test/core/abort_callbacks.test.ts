// Every API call taking an AbortSignal rejects with the same error whether the signal fired before the call or
// while it ran (IbqError, code ERR_IBQ_ABORTED, name 'AbortError', the signal's reason as `cause`), and a user
// callback that throws (onProgress of sample / generate / FID Inception / evaluateTokenizer) makes the call
// reject with what it threw, is not called again, and stops the native job.
import { describe, expect, it } from 'vitest';

import { evaluateTokenizer, FidInception, generate, IbqError, tensor, Tokenizer, trainTransformer, Transformer } from '../../dist/index.js';

const AR = { vocab_size: 64, block_size: 64, n_layer: 1, n_head: 2, n_embd: 32, class_num: 4, multiple_of: 32 };
// long enough to abort while it runs: 1024 tokens of a 4-layer model
const BIG = { ...AR, block_size: 1024, n_layer: 4, n_embd: 128 };
const TOK = {
  ddconfig: { double_z: false, z_channels: 32, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  n_embed: 64, embed_dim: 8,
};

type Err = Error & { code?: string; cause?: unknown };
const rejection = (p: Promise<unknown>) => p.then(() => { throw new Error('resolved'); }, (e: unknown) => e as Err);

function expectAborted(e: Err, reason?: unknown): void {
  expect(e).toBeInstanceOf(IbqError);
  expect(e.name).toBe('AbortError');
  expect(e.code).toBe('ERR_IBQ_ABORTED');
  expect(e.message).toBe('the operation was aborted');
  if (reason !== undefined) expect(e.cause).toBe(reason);
}

/** An AbortSignal that has fired with `reason`. */
function fired(reason: unknown): AbortSignal {
  const ac = new AbortController();
  ac.abort(reason);
  return ac.signal;
}

describe('aborts', () => {
  it('before the call and during it: the same error, from every call taking a signal', async () => {
    const tr = Transformer.create(AR, { seed: 1 }).eval();
    const tok = Tokenizer.create(TOK, { seed: 1 }).eval();
    const images = tensor(new Float32Array(4 * 3 * 16 * 16).fill(0.25), [4, 3, 16, 16]);
    const fid = FidInception.create();
    const reason = new Error('client went away');
    const calls: [string, (signal: AbortSignal) => Promise<unknown>][] = [
      ['sample', (signal) => tr.sample({ labels: [0, 1], signal })],
      ['generate', (signal) => generate({ transformer: tr, tokenizer: tok, labels: [0, 1], signal })],
      ['FidInception.forward', (signal) => fid.forward(images, { input: 'symmetric', signal })],
      ['evaluateTokenizer', (signal) => evaluateTokenizer({ tokenizer: tok, data: [images], signal })],
    ];
    for (const [name, call] of calls) {
      const e = await rejection(call(fired(reason)));
      expect(e.message, name).toBe('the operation was aborted');
      expectAborted(e, reason);
      // a fired signal without a reason of its own (AbortSignal.abort() gives a DOMException reason)
      expectAborted(await rejection(call(AbortSignal.abort())));
    }
    // during the call: the running native job stops on its flag
    const big = Transformer.create(BIG, { seed: 3 }).eval();
    const ac = new AbortController();
    const running = big.sample({ labels: [0, 1, 2, 3], seed: 1, signal: ac.signal });
    setTimeout(() => ac.abort(reason), 30);
    const during = await rejection(running);
    expectAborted(during, reason);
    expect(during.stack).toContain('abort_callbacks.test.ts');
    for (const m of [tr, tok, big, images, fid]) m.dispose();
  }, 120_000);

  it('a signal that is not an AbortSignal is a TypeError naming it', async () => {
    const tr = Transformer.create(AR, { seed: 1 });
    const tok = Tokenizer.create(TOK, { seed: 1 });
    const notASignal = { aborted: 'no' } as never;
    await expect(tr.sample({ labels: [0], signal: notASignal })).rejects.toThrow(/^signal: expected an AbortSignal/);
    await expect(evaluateTokenizer({ tokenizer: tok, data: [], signal: notASignal })).rejects.toThrow(/^signal: expected an AbortSignal/);
    await expect(trainTransformer({ transformer_config: { params: AR } }, { outDir: '/nonexistent/never-written', batchSize: 1, signal: notASignal }))
      .rejects.toThrow(/^signal: expected an AbortSignal/);
    tr.dispose();
    tok.dispose();
  });
});

describe('callbacks that throw', () => {
  it('sample(): rejects with the thrown error after one call, and the job stops there', async () => {
    const big = Transformer.create(BIG, { seed: 3 }).eval();
    const t0 = performance.now();
    (await big.sample({ labels: [0, 1], seed: 1 })).dispose();
    const full = performance.now() - t0;
    const boom = new Error('progress handler failed');
    let calls = 0;
    const t1 = performance.now();
    const e = await rejection(big.sample({ labels: [0, 1], seed: 1, onProgress: () => { calls++; throw boom; } }));
    const stopped = performance.now() - t1;
    expect(e).toBe(boom);
    expect(calls).toBe(1);
    // the job ended after its first token or so, not after all 1024 (the promise settles when the job ends)
    expect(stopped).toBeLessThan(full / 2);
    // the model's queue is free: the next call runs and reports every token
    const steps: number[] = [];
    (await big.sample({ labels: [0], greedy: true, onProgress: (s) => steps.push(s) })).dispose();
    expect(steps.length).toBe(BIG.block_size);
    big.dispose();
  }, 120_000);

  it('generate(), FidInception.forward(), evaluateTokenizer(): reject with the thrown error', async () => {
    const tr = Transformer.create(AR, { seed: 1 }).eval();
    const tok = Tokenizer.create(TOK, { seed: 1 }).eval();
    const images = tensor(new Float32Array(3 * 3 * 16 * 16).fill(0.25), [3, 3, 16, 16]);
    const fid = FidInception.create();
    const calls: [string, (onProgress: () => void) => Promise<unknown>][] = [
      ['generate', (onProgress) => generate({ transformer: tr, tokenizer: tok, labels: [0, 1, 2], batchSize: 1, onProgress })],
      ['FidInception.forward', (onProgress) => fid.forward(images, { input: 'symmetric', batchSize: 1, onProgress })],
      ['evaluateTokenizer', (onProgress) => evaluateTokenizer({ tokenizer: tok, data: [images, images], onProgress })],
    ];
    for (const [name, call] of calls) {
      const boom = new Error(`${name} progress failed`);
      let n = 0;
      const e = await rejection(call(() => { n++; throw boom; }));
      expect(e, name).toBe(boom);
      expect(n, name).toBe(1);
    }
    for (const m of [tr, tok, images, fid]) m.dispose();
  }, 120_000);
});

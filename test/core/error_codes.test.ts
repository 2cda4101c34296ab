// Every code of ERROR_CODES is raised where README's "Errors" section says: one provoking call per code, and a
// code added to the list without a provoker here fails this test. An abort gives the same error whether the
// signal fired before or during the call.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import {
  createServer, ERROR_CODES, FidInception, IBQuantizer, loadCheckpoint, loadImages, ProcessGroup, tensor, Tokenizer, trainTransformer,
  Transformer,
} from '../../dist/index.js';
import type { IbqServer } from '../../dist/index.js';
import { reconstructTargets } from '../../dist/cli/tokenizer.js';
import { chooseAddon, native } from '../../dist/native.js';
import { run } from '../support/run.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'ibq-codes-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const AR = { vocab_size: 16, block_size: 4, n_layer: 1, n_head: 2, n_embd: 16, class_num: 3, multiple_of: 16 };
const i64 = (v: number[], shape: number[]) => tensor(v.map(BigInt), shape, { dtype: 'int64' });
const tokens = () => ({ tokens: i64(Array.from({ length: 64 }, (_, i) => i % 16), [16, 4]), labels: i64(Array.from({ length: 16 }, (_, i) => i % 3), [16]) });

/** The code of what `f` throws or rejects with (undefined when it succeeds). */
async function codeOf(f: () => unknown): Promise<string | undefined> {
  try {
    await f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

/** The error code of a request to a server over a tiny random tokenizer and transformer (`ibq serve`). */
async function serverCode(
  opts: { maxBatch?: number; maxQueue?: number; requestTimeout?: number; ar?: boolean },
  go: (s: IbqServer, inject: (body: object) => Promise<{ json(): unknown }>) => Promise<{ json(): unknown }>,
): Promise<never> {
  const { ar = true, ...rest } = opts;
  const tokenizer = await Tokenizer.createAsync({ ddconfig: { z_channels: 32, resolution: 16, ch: 32, ch_mult: [1, 2], num_res_blocks: 1 }, n_embed: 16, embed_dim: 8 });
  const transformer = ar ? Transformer.create({ ...AR, block_size: 64 }, { seed: 1 }).eval() : undefined;
  const s = await createServer({ tokenizer, transformer, logger: false, ...rest });
  try {
    const r = await go(s, (body) => s.app.inject({ method: 'POST', url: '/v1/generate', payload: body }));
    throw Object.assign(new Error('from the server'), { code: (r.json() as { error: { code: string } }).error.code });
  } finally {
    await s.drain(5000);
  }
}

/** Runs a module snippet in a child Node process (for codes a process can meet only once) and returns its stdout. */
async function child(code: string): Promise<string> {
  const r = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim();
}

const provoke: Record<keyof typeof ERROR_CODES, () => Promise<unknown> | unknown> = {
  ERR_IBQ_ABORTED: () => Transformer.create(AR, { seed: 1 }).sample({ labels: [0], signal: AbortSignal.abort() }),
  ERR_IBQ_BAD_CHECKPOINT: () => {
    const p = join(tmp, 'garbage.ckpt');
    writeFileSync(p, Buffer.from('this is not a torch.save file'));
    return loadCheckpoint(p);
  },
  // a native shape check (the transformer's loss needs at least one token per row)
  ERR_IBQ_SHAPE: () => Transformer.create(AR, { seed: 1 }).lossAndGrads(i64([], [2, 0]), i64([0, 1], [2]), { wrt: [] }),
  // a native value check (z's channels are not embed_dim)
  ERR_IBQ_INVALID_ARGUMENT: () => new IBQuantizer({ n_embed: 8, embed_dim: 4 }).forward(tensor(new Float32Array(12), [1, 3, 2, 2])),
  ERR_IBQ_NATIVE: () => native.testOps.fail('a libtorch error', true),
  ERR_IBQ_DISPOSED: () => {
    const t = tensor([1, 2], [2]);
    t.dispose();
    return t.dataSync();
  },
  ERR_IBQ_BUSY: async () => {
    const q = new IBQuantizer({ n_embed: 8, embed_dim: 4 });
    const running = q.forward(tensor(new Float32Array(4 * 64 * 64), [1, 4, 64, 64]));
    try {
      q.stateDict();
    } finally {
      await running;
    }
  },
  ERR_IBQ_NON_FINITE: async () => {
    // the first update (lr 1e30) moves the weights to about 1e30: the second step's logits overflow, its loss is NaN
    const cfg = { transformer_config: { params: AR } };
    return trainTransformer(cfg, { tokens: tokens(), outDir: join(tmp, 'nan'), maxSteps: 2, batchSize: 4, seed: 1, lr: 1e30 });
  },
  ERR_IBQ_OUT_DIR_IN_USE: async () => {
    const out = join(tmp, 'in-use');
    await trainTransformer({ transformer_config: { params: AR } }, { tokens: tokens(), outDir: out, maxSteps: 1, batchSize: 4, seed: 1 });
    return trainTransformer({ transformer_config: { params: AR } }, { tokens: tokens(), outDir: out, maxSteps: 1, batchSize: 4, seed: 1 });
  },
  ERR_IBQ_NO_CHECKPOINT: () =>
    trainTransformer({ transformer_config: { params: AR } }, { tokens: tokens(), outDir: join(tmp, 'empty'), maxSteps: 1, batchSize: 4, seed: 1, resume: true }),
  ERR_IBQ_MISSING_WEIGHTS: () => FidInception.load(join(tmp, 'no-such-weights.pth')),
  ERR_IBQ_BAD_IMAGE: () => loadImages([Buffer.from('not an image at all')], 8),
  ERR_IBQ_IMAGE_TOO_LARGE: async () => {
    const sharp = (await import('sharp')).default;
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png().toBuffer();
    return loadImages([png], 8, { maxPixels: 100 });
  },
  ERR_IBQ_OUTPUT_CLASH: () => reconstructTargets(['a/x.jpg', 'b/x.png'], join(tmp, 'recon')),
  // a rendezvous that never completes (nobody serves the master), after its 1 s timeout
  ERR_IBQ_DISTRIBUTED: () => ProcessGroup.init({ masterAddr: '127.0.0.1', masterPort: 9, worldSize: 2, rank: 1, timeoutSeconds: 1 }),
  ERR_IBQ_SHUTTING_DOWN: () =>
    child(`
      import { tensor } from './dist/index.js';
      import { native } from './dist/native.js';
      native.shutdown(false);
      try { await tensor([1], [1]).data(); console.log('no error'); } catch (e) { console.log(e.code); }
    `).then((code) => {
      throw Object.assign(new Error('from the child'), { code });
    }),
  // a package folder with neither a build nor a prebuild for this libtorch
  ERR_IBQ_ADDON: () => chooseAddon(mkdtempSync(join(tmp, 'pkg-'))),
  ERR_IBQ_ESM_ONLY: () => createRequire(import.meta.url)('ibq-native'),
  ERR_IBQ_NOT_FOUND: () => serverCode({ ar: false }, (_s, inject) => inject({ class: 0 })),
  ERR_IBQ_BODY_TOO_LARGE: () => serverCode({}, (_s, inject) => inject({ class: 0, pad: 'x'.repeat(16 * 2 ** 20) })),
  ERR_IBQ_QUEUE_FULL: () => serverCode({ maxBatch: 1, maxQueue: 0 }, async (s, inject) => {
    const first = inject({ class: 0 });
    while (s.inFlight === 0) await new Promise((r) => setTimeout(r, 1));
    const second = await inject({ class: 1 });
    await first;
    return second;
  }),
  ERR_IBQ_TIMEOUT: () => serverCode({ requestTimeout: 0.001 }, (_s, inject) => inject({ class: 0 })),
};

describe('ERROR_CODES', () => {
  it('every code has a provoking call here', () => {
    expect(Object.keys(provoke).sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it.each(Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[])('%s is raised', async (code) => {
    expect(await codeOf(provoke[code])).toBe(code);
  }, 60_000);

  it('an abort before the call and one during it give the same error', async () => {
    const tr = Transformer.create({ ...AR, block_size: 256, vocab_size: 64 }, { seed: 1 });
    const before = await tr.sample({ labels: [0], signal: AbortSignal.abort() }).catch((e: unknown) => e as Error & { code?: string });
    const ac = new AbortController();
    const during = await tr.sample({ labels: [0], signal: ac.signal, onProgress: (step) => { if (step === 2) ac.abort(); } })
      .catch((e: unknown) => e as Error & { code?: string });
    for (const e of [before, during]) {
      expect(e).toBeInstanceOf(Error);
      expect(e.code).toBe('ERR_IBQ_ABORTED');
      expect(e.name).toBe('AbortError');
    }
    expect(during.constructor).toBe(before.constructor);
  });

  it('a call on a disposed model rejects with ERR_IBQ_DISPOSED', async () => {
    const tok = Tokenizer.create({
      ddconfig: { double_z: false, z_channels: 8, resolution: 8, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0 },
      n_embed: 8, embed_dim: 4,
    }, { seed: 1 });
    tok.dispose();
    expect(await codeOf(() => tok.encode(tensor(new Float32Array(3 * 64), [1, 3, 8, 8])))).toBe('ERR_IBQ_DISPOSED');
  });
});

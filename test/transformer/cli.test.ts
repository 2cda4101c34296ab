// AR data and CLI end to end on tiny models: trainTransformer on an image folder through the tokenizer
// fixture with the token cache; in-memory images; readConfig's transformer part; `ibq sample` (tokens,
// images, npz, chunks) and `ibq train-ar` (YAML, cache, SIGINT -> checkpoint, exit 130, resume).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import sharp from 'sharp';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  generate, loadCheckpoint, loadNpz, loadSafetensors, readConfig, saveCheckpoint, saveSafetensors, tensor, trainTransformer,
  Transformer, type Tensor, type Tokenizer,
} from '../../dist/index.js';
import { fixtureTokenizer, TINY_AR, tinyTransformer, tokenizerCaseConfig, TOKENIZER_CKPT, writeImageFolder } from '../support/ar_tiny.js';
import { HAVE_FIXTURES } from '../support/fixtures.js';
import { run } from '../support/run.js';

const BIN = resolve(__dirname, '..', '..', 'bin', 'ibq.js');
const ibq = (args: string[]) => run(process.execPath, [BIN, ...args], { timeout: 120_000 });
const ints = (t: Tensor) => Array.from(t.dataSync() as BigInt64Array, Number);

/** An official-layout AR YAML: Net2NetTransformer init_args with transformer_config and first_stage_config. */
function arYaml(dir: string, params: object): string {
  const file = join(dir, 'ar.yaml');
  writeFileSync(file, stringify({
    model: {
      class_path: 'src.IBQ.models.cond_transformer_llama.Net2NetTransformer',
      init_args: {
        learning_rate: 3e-3, weight_decay: 0.05, wp: 0, wp0: 0.005, wpe: 0.01, twde: 0.01,
        transformer_config: { target: 'src.IBQ.modules.transformer.llama.GPT', params },
        first_stage_config: { target: 'src.IBQ.models.ibqgan.IBQ', params: tokenizerCaseConfig() },
        cond_stage_config: { target: 'src.IBQ.modules.util.Labelator', params: { n_classes: 3 } },
      },
    },
  }));
  return file;
}

describe('readConfig: the transformer part of an AR YAML', () => {
  it('returns transformer_config.params, the optimisation fields and the first-stage tokenizer', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-cfg-'));
    const params = { ...TINY_AR, class_dropout_prob: 0.1 };
    const c = readConfig(arYaml(dir, params));
    expect(c.transformer).toEqual(params);
    expect(c.arTraining).toEqual({ learning_rate: 3e-3, weight_decay: 0.05, wp: 0, wp0: 0.005, wpe: 0.01, twde: 0.01 });
    expect(c.tokenizer?.n_embed).toBe(128);
    expect(Transformer.create(join(dir, 'ar.yaml')).config.block_size).toBe(256);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, stringify({ model: { init_args: { transformer_config: { params: [1] } } } }));
    expect(() => readConfig(bad)).toThrow(/transformer_config.params: expected a mapping/);
    writeFileSync(bad, stringify({ model: { init_args: { learning_rate: 'fast', transformer_config: { params } } } }));
    expect(() => readConfig(bad)).toThrow(/model.init_args.learning_rate: expected a number, got "fast"/);
  });
});

describe.skipIf(!HAVE_FIXTURES)('AR training data from the tokenizer fixture', () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await fixtureTokenizer();
  });
  afterAll(() => tok?.dispose());

  it('encodes an image folder once, then reads the token cache until an image changes', async () => {
    const data = mkdtempSync(join(tmpdir(), 'ibq-data-'));
    await writeImageFolder(data, ['cat', 'ant', 'bee'], 2);
    const out = mkdtempSync(join(tmpdir(), 'ibq-ar-data-'));
    let calls = 0;
    const counting = {
      encodeImages: (p: string[], o: { imageSize: number }) => (calls++, tok.encodeImages(p, o)),
      encode: (x: Tensor) => tok.encode(x),
      stateDict: () => tok.stateDict(),
      config: tok.config,
    };
    const seen: (boolean | undefined)[] = [];
    const run = () => trainTransformer({ transformer_config: { params: TINY_AR } }, {
      tokenizer: counting, data, outDir: out, overwrite: true, maxSteps: 2, batchSize: 3, seed: 1, onData: (d) => seen.push(d.cached),
    });
    const r1 = await run();
    expect(calls).toBeGreaterThan(0);
    const afterFirst = calls;
    await run();
    expect(calls).toBe(afterFirst);
    expect(seen).toEqual([false, true]);
    expect(r1.globalStep).toBe(2);
    // cached tokens are the tokenizer's indices of the images, classes sorted by name (ant, bee, cat)
    const cache = (await import('node:fs')).readdirSync(out).filter((f) => f.startsWith('tokens-'));
    expect(cache.length).toBe(1);
    const m = await loadSafetensors(join(out, cache[0]!));
    expect(ints(m.get('labels')!)).toEqual([0, 0, 1, 1, 2, 2]);
    const direct = await tok.encodeImages([join(data, 'bee', 'img1.png')], { imageSize: 32 });
    expect(ints(m.get('tokens')!).slice(3 * 256, 4 * 256)).toEqual(ints(direct.indices));
    // a changed image (new mtime) invalidates the cache
    utimesSync(join(data, 'ant', 'img0.png'), new Date(), new Date(Date.now() + 5000));
    await run();
    expect(calls).toBeGreaterThan(afterFirst);
    expect(seen.at(-1)).toBe(false);
  });

  it('encodes in-memory images [N, 3, H, W] with their labels', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-mem-'));
    await writeImageFolder(dir, ['a'], 3);
    const enc = await tok.encodeImages([0, 1, 2].map((k) => join(dir, 'a', `img${k}.png`)), { imageSize: 32 });
    let steps = 0;
    const r = await trainTransformer({ transformer_config: { params: TINY_AR } }, {
      tokenizer: tok, images: { images: enc.images, labels: [2, 0, 1] }, outDir: join(dir, 'run'), maxSteps: 1, batchSize: 3,
      onStep: () => steps++,
    });
    expect([r.globalStep, steps]).toEqual([1, 1]);
    await expect(trainTransformer({ transformer_config: { params: { ...TINY_AR, block_size: 64 } } }, {
      tokenizer: tok, images: { images: enc.images, labels: [2, 0, 1] }, outDir: join(dir, 'run2'), maxSteps: 1, batchSize: 3,
    })).rejects.toThrow(/256 tokens per image.*block_size is 64/);
  });
});

describe.skipIf(!HAVE_FIXTURES)('ibq sample / ibq train-ar', () => {
  it('ibq sample writes the tokens, a grid and the npz that generate() makes; --chunk seeds seed * N + I', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-cli-sample-'));
    const tr = await tinyTransformer(2);
    const ar = join(dir, 'ar.ckpt');
    await saveCheckpoint(ar, {
      stateDict: new Map([...tr.stateDict()].map(([k, v]) => [`transformer.${k}`, v])),
      meta: { global_step: 0, hyper_parameters: { transformer_config: { params: TINY_AR } } },
    });
    const out = join(dir, 'out');
    const r = await ibq(['sample', '--ar', ar, '--tokenizer', TOKENIZER_CKPT(), '--tokenizer-config', join(dir, 'tok.yaml'), '--classes', '0,2',
      '--per-class', '2', '--batch-size', '3', '--seed', '5', '--temperature', '1.0', '--npz', '--out', out]);
    // (tok.yaml does not exist yet: the error names it)
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/tok\.yaml/);
    writeFileSync(join(dir, 'tok.yaml'), stringify({ model: { class_path: 'src.IBQ.models.ibqgan.IBQ', init_args: tokenizerCaseConfig() } }));
    const ok = await ibq(['sample', '--ar', ar, '--tokenizer', TOKENIZER_CKPT(), '--tokenizer-config', join(dir, 'tok.yaml'), '--classes', '0,2',
      '--per-class', '2', '--batch-size', '3', '--seed', '5', '--temperature', '1.0', '--npz', '--out', out]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ samples: 4, classes: 2, seed: 5 });
    const tok = await fixtureTokenizer();
    const want = await generate({ transformer: tr, tokenizer: tok, labels: [0, 0, 2, 2], seed: 5, batchSize: 3, temperature: 1.0 });
    const saved = await loadSafetensors(join(out, 'tokens.safetensors'));
    expect(ints(saved.get('tokens')!)).toEqual(ints(want.tokens));
    expect(ints(saved.get('labels')!)).toEqual([0, 0, 2, 2]);
    const npz = (await loadNpz(join(out, 'samples.npz'))).get('arr_0')!;
    expect(npz.shape).toEqual([4, 32, 32, 3]);
    expect(Buffer.from(npz.dataSync() as Uint8Array).equals(Buffer.from(want.images.dataSync() as Uint8Array))).toBe(true);
    const grid = await sharp(join(out, 'grid.png')).metadata();
    expect([grid.width, grid.height]).toEqual([2 * 32 + 3 * 2, 2 * 32 + 3 * 2]); // per-class (2) columns

    // chunk 1 of 2 of 'all' (3 classes -> [0, 1], [2]): tokens only, seeded 5 * 2 + 1
    const c = await ibq(['sample', '--ar', ar, '--classes', 'all', '--chunk', '1/2', '--per-class', '2', '--seed', '5', '--out', out]);
    expect(c.status, c.stderr).toBe(0);
    const chunk = await loadSafetensors(join(out, 'tokens-1of2.safetensors'));
    expect(ints(chunk.get('tokens')!)).toEqual(ints(await tr.sample({ labels: [2, 2], seed: 11 })));
    expect(existsSync(join(out, 'grid-1of2.png'))).toBe(false);

    const bad = await ibq(['sample', '--ar', ar, '--npz', '--out', out]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--npz: needs --tokenizer/);
    const badClass = await ibq(['sample', '--ar', ar, '--classes', '0,3', '--out', out]);
    expect(badClass.stderr).toMatch(/--classes: class ids must be integers in \[0, 2\], got '3'/);
    tok.dispose();
  });

  it('ibq train-ar: YAML + tokenizer + data folder, token cache reuse, SIGINT saves last.ckpt and exits 130, --resume', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-cli-train-'));
    const data = join(dir, 'data');
    await writeImageFolder(data, ['a', 'b'], 2);
    const yaml = arYaml(dir, TINY_AR);
    const out = join(dir, 'run');
    const base = ['train-ar', '--config', yaml, '--tokenizer', TOKENIZER_CKPT(), '--data', data, '--out', out, '--batch-size', '2'];
    const r1 = await ibq([...base, '--max-steps', '2']);
    expect(r1.status, r1.stderr).toBe(0);
    expect(r1.stderr).toMatch(/4 token maps \(4 encoded by this process, cached\)/);
    expect(JSON.parse(r1.stdout)).toMatchObject({ globalStep: 2, stopped: 'done', checkpoint: join(out, 'last.ckpt') });
    const ck = await loadCheckpoint(join(out, 'last.ckpt'));
    expect(ck.meta.global_step).toBe(2);
    expect((ck.meta.hyper_parameters as Record<string, unknown>).learning_rate).toBe(3e-3);

    // a long run interrupted by SIGINT once it has logged a step
    const child = spawn(process.execPath, [BIN, ...base, '--max-steps', '100000', '--resume', '--checkpoint-every', '100000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const log = join(out, 'log.jsonl');
    const start = readFileSync(log, 'utf8').trim().split('\n').length;
    const t0 = Date.now();
    while (readFileSync(log, 'utf8').trim().split('\n').length < start + 2 && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/from the cache/);
    const res = JSON.parse(stdout);
    expect(res.stopped).toBe('aborted');
    expect(stderr).toContain(`stopped at step ${res.globalStep}; checkpoint ${join(out, 'last.ckpt')}`);
    const after = await loadCheckpoint(join(out, 'last.ckpt'));
    expect(after.meta.global_step).toBe(res.globalStep);
    expect(res.globalStep).toBeGreaterThan(3);
    const r3 = await ibq([...base, '--max-steps', String(res.globalStep + 1), '--resume']);
    expect(r3.status, r3.stderr).toBe(0);
    expect(JSON.parse(r3.stdout).globalStep).toBe(res.globalStep + 1);
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(lines.at(-1)).toBe(res.globalStep);
  }, 120_000);

  it('train-ar --tokens reads pre-computed tokens and refuses a missing source', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-cli-tokens-'));
    const n = 4;
    const toks = tensor(BigInt64Array.from({ length: n * 256 }, (_, i) => BigInt(i % 128)), [n, 256]);
    await saveSafetensors(join(dir, 't.safetensors'), new Map([['tokens', toks], ['labels', tensor([0n, 1n, 2n, 0n], [n])]]));
    const yaml = arYaml(dir, TINY_AR);
    const r = await ibq(['train-ar', '--config', yaml, '--tokens', join(dir, 't.safetensors'), '--out', join(dir, 'run'), '--batch-size', '2', '--max-steps', '1']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).globalStep).toBe(1);
    const none = await ibq(['train-ar', '--config', yaml, '--out', join(dir, 'run')]);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/give --tokens FILE, or --tokenizer CKPT with --data DIR/);
  });
});

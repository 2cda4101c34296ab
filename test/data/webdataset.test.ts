// WebDataset shards: spec expansion, `ibq shard` output read back member for member, every sample once per epoch
// across 2 ranks over 4 shards, exact resume of a rank's stream mid-shard, and a tokenizer run killed and resumed
// mid-shard ending with the weights of an uninterrupted run.
import { readFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  evaluateTokenizer, expandBraces, expandShardSpec, readShard, ShardDataset, shardKeys, streamRun, Tokenizer, trainTokenizer, writeShards, loadCheckpoint,
} from '../../dist/index.js';
import { ibq, runRanks, ROOT } from '../distributed/support.js';
import { tinyTokenizerYaml, writeClassFolders } from '../support/shard_images.js';

const root = mkdtempSync(join(tmpdir(), 'ibq-wds-'));
const folder = join(root, 'images');
const shards = join(root, 'shards');
const CLASSES = ['cat', 'dog', 'owl'];
const PER_CLASS = 9; // 27 samples: 4 shards of 7, 7, 7, 6
let sources: string[][];

async function allSamples(spec: string) {
  const out = [];
  for (const p of expandShardSpec(spec)) for await (const s of readShard(p)) out.push({ ...s, shard: basename(p) });
  return out;
}

beforeAll(async () => {
  sources = await writeClassFolders(folder, CLASSES, PER_CLASS);
  const r = await ibq(['shard', '--data', folder, '--out', shards, '--shard-size', '7', '--prefix', 'train']);
  expect(r.stderr).toContain('train-000003.tar');
  expect(JSON.parse(r.stdout)).toEqual({ shards: 4, samples: 27, classes: 3, out: shards });
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('shard specs', () => {
  it('expands brace ranges (zero padding kept), lists, nesting and steps as braceexpand', () => {
    expect(expandBraces('s-{000..002}.tar')).toEqual(['s-000.tar', 's-001.tar', 's-002.tar']);
    expect(expandBraces('{a,b{1..2}}/x-{8..10}.tar')).toEqual(['a/x-8.tar', 'a/x-9.tar', 'a/x-10.tar', 'b1/x-8.tar', 'b1/x-9.tar', 'b1/x-10.tar', 'b2/x-8.tar', 'b2/x-9.tar', 'b2/x-10.tar']);
    expect(expandBraces('{0..6..3}')).toEqual(['0', '3', '6']);
    expect(expandBraces('{3..1}')).toEqual(['3', '2', '1']);
    expect(() => expandBraces('a{1..2')).toThrow(/data: unbalanced '\{'/);
  });
  it('takes ranges, lists and globs of shard files, and names an item that matches nothing', () => {
    const range = expandShardSpec(join(shards, 'train-{000000..000003}.tar'));
    expect(range.map((p) => basename(p))).toEqual(['train-000000.tar', 'train-000001.tar', 'train-000002.tar', 'train-000003.tar']);
    expect(expandShardSpec(join(shards, 'train-00000[13].tar')).map((p) => basename(p))).toEqual(['train-000001.tar', 'train-000003.tar']);
    expect(expandShardSpec(join(shards, '{train-000002,train-000000}.tar')).map((p) => basename(p))).toEqual(['train-000002.tar', 'train-000000.tar']);
    expect(() => expandShardSpec(join(shards, 'train-{000003..000004}.tar'), '--data')).toThrow(/--data: ".*train-000004.tar" .* matches no shard file/);
  });
});

describe('ibq shard', () => {
  it('writes every image once, byte for byte, with its label and class, and an index of the counts', async () => {
    const got = await allSamples(join(shards, 'train-{000000..000003}.tar'));
    expect(got.map((s) => s.shard).filter((s) => s === 'train-000003.tar')).toHaveLength(6);
    const byKey = new Map(got.map((s) => [s.key, s]));
    expect(byKey.size).toBe(27);
    for (const [c, paths] of sources.entries()) {
      for (const [i, p] of paths.entries()) {
        const s = byKey.get(`${CLASSES[c]}/img_${i}`)!;
        expect(s, p).toBeDefined();
        expect(s.ext).toBe(p.endsWith('.png') ? 'png' : 'jpg');
        expect(Buffer.compare(s.image, readFileSync(p))).toBe(0);
        expect(s.label).toBe(c);
      }
    }
    const index = JSON.parse(readFileSync(join(shards, 'shards.json'), 'utf8'));
    expect(index.classes).toEqual(CLASSES);
    expect(Object.values(index.shards).map((e: any) => e.samples)).toEqual([7, 7, 7, 6]);
    // the shards were shuffled: classes mixed in the first shard
    expect(new Set(got.filter((s) => s.shard === 'train-000000.tar').map((s) => s.label)).size).toBeGreaterThan(1);
    // counting by reading the tar gives the index's counts
    expect(await shardKeys(join(shards, 'train-000003.tar'))).toEqual(got.filter((s) => s.shard === 'train-000003.tar').map((s) => s.key));
  });
  it('refuses an output folder that holds shards, naming it', async () => {
    const r = await ibq(['shard', '--data', folder, '--out', shards, '--shard-size', '7']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/outDir: .* already holds shards/);
  });
  it('reads samples grouped by key with a .json label, and skips members that are not samples', async () => {
    const dir = join(root, 'handmade');
    mkdirSync(dir);
    const { writeShard } = await import('../../dist/data/shards.js');
    const img = readFileSync(sources[0]![0]!);
    await writeShard(join(dir, 'a.tar'), [{ key: 'x/one', ext: 'jpg', image: img, label: 4 }, { key: 'x/two', ext: 'webp', image: img, label: 5 }]);
    const got = await allSamples(join(dir, 'a.tar'));
    expect(got.map((s) => [s.key, s.ext, s.label])).toEqual([['x/one', 'jpg', 4], ['x/two', 'webp', 5]]);
  });
});

describe('evaluation on shards', () => {
  it('evaluateTokenizer on shards written in listing order gives the metrics of the image folder', async () => {
    const ordered = join(root, 'ordered');
    await writeShards({ data: folder, outDir: ordered, shardSize: 5, seed: null });
    const cfg = {
      ddconfig: { double_z: false, z_channels: 16, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
      n_embed: 32, embed_dim: 8,
    };
    const tokenizer = Tokenizer.create(cfg, { seed: 4 });
    const opts = { tokenizer, imageSize: 16, batchSize: 4 };
    const a = await evaluateTokenizer({ ...opts, data: folder });
    const b = await evaluateTokenizer({ ...opts, data: join(ordered, 'shard-{000000..000005}.tar') });
    expect(b.numImages).toBe(27);
    expect([b.psnr, b.ssim, b.usedCodes]).toEqual([a.psnr, a.ssim, a.usedCodes]);
    const limited = await evaluateTokenizer({ ...opts, data: join(ordered, 'shard-*.tar'), limit: 6 });
    expect(limited.numImages).toBe(6);
  });
});

describe('the epoch stream', () => {
  const spec = () => join(shards, 'train-{000000..000003}.tar');
  it('2 ranks over 4 shards (a process group counting the shards): every key exactly once per epoch, orders differing by epoch', async () => {
    const runs = await runRanks(join(ROOT, 'test/distributed/workers/shard_stream_rank.mjs'), { spec: spec(), seed: 3, buffer: 5 }, 2);
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const out = runs.map((r) => JSON.parse(r.stdout.trim().split('\n').pop()!));
    const keys = (await allSamples(spec())).map((s) => `${s.shard}:${s.key}`).sort();
    for (const e of [0, 1]) {
      const seen = [...out[0].epochs[e], ...out[1].epochs[e]];
      // 27 samples on 2 ranks: 14 each, the last rank's run padded with the epoch's first sample
      expect(out[0].epochs[e]).toHaveLength(14);
      expect(out[1].epochs[e]).toHaveLength(14);
      const counts = new Map<string, number>();
      for (const k of seen) counts.set(k, (counts.get(k) ?? 0) + 1);
      expect([...counts.keys()].sort()).toEqual(keys);
      expect([...counts.values()].filter((c) => c === 2)).toHaveLength(1);
    }
    expect(out[0].epochs[0]).not.toEqual(out[0].epochs[1]);
  }, 120_000);
  it('resumes a rank\'s stream at any position exactly (mid-shard, while filling, in the drain)', async () => {
    const ds = await ShardDataset.open(spec(), { size: 8, train: true, seed: 1, shuffleBuffer: 6, shard: { rank: 1, worldSize: 2 } });
    const plan = ds.plan;
    const full: string[] = [];
    for await (const s of streamRun(plan, 2)) full.push(s.key);
    expect(full).toHaveLength(14);
    for (const from of [1, 3, 5, 8, 11, 13]) {
      const tail: string[] = [];
      for await (const s of streamRun(plan, 2, from)) tail.push(s.key);
      expect(tail, `from ${from}`).toEqual(full.slice(from));
    }
    // the dataset repositions itself when asked for another position
    const a = await ds.samples([9, 10], 2);
    expect(a.map((s) => s.key)).toEqual(full.slice(9, 11));
    const b = await ds.samples([2, 3, 4], 2);
    expect(b.map((s) => s.key)).toEqual(full.slice(2, 5));
    ds.dispose();
  });
});

const YAML = tinyTokenizerYaml('    use_entropy_loss: true\n');

describe('tokenizer training on shards', () => {
  beforeAll(() => writeFileSync(join(root, 'tok.yaml'), YAML));
  it('a run stopped mid-shard and resumed ends with the weights and losses of an uninterrupted one', async () => {
    const cfg = join(root, 'tok.yaml');
    const spec = join(shards, 'train-{000000..000003}.tar');
    const base = { data: spec, batchSize: 4, maxSteps: 9, shuffleBuffer: 5, seed: 2, checkpointEvery: 0, distributed: false as const };
    const full = await trainTokenizer(cfg, { ...base, outDir: join(root, 'full') });
    const ctl = new AbortController();
    // 27 samples, 4 a step: step 2 ends at sample 12, inside the second shard of epoch 0
    const first = await trainTokenizer(cfg, { ...base, outDir: join(root, 'cut'), signal: ctl.signal, onStep: (s) => s.step === 2 && ctl.abort() });
    expect(first.stopped).toBe('aborted');
    expect(first.globalStep).toBe(3);
    const ck = await loadCheckpoint(join(root, 'cut', 'last.ckpt'));
    expect(ck.meta.ibq_data_position).toEqual({ epoch: 0, samples: 12, stream: { shards: 4, samples: 27, shuffleBuffer: 5, worldSize: 1 } });
    const resumed = await trainTokenizer(cfg, { ...base, outDir: join(root, 'cut'), resume: true });
    expect(resumed.globalStep).toBe(9);
    const logOf = (d: string) => readFileSync(join(root, d, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)['train/total_loss']);
    expect(logOf('cut')).toEqual(logOf('full'));
    const a = full.tokenizer.stateDict();
    const b = resumed.tokenizer.stateDict();
    for (const [k, t] of a) expect(Buffer.compare(Buffer.from((await t.data()).buffer), Buffer.from((await b.get(k)!.data()).buffer)), k).toBe(0);
  }, 300_000);

  it('names each bad image (shard:key and why) as it is met, counts it, and stops beyond maxBadImages', async () => {
    const dir = join(root, 'bad');
    mkdirSync(dir);
    const { writeShard } = await import('../../dist/data/shards.js');
    const good = sources[0]!.map((p) => readFileSync(p));
    const samples = good.slice(0, 6).map((image, i) => ({ key: `k${i}`, ext: 'jpg', image, label: 0 }));
    samples[1]!.image = Buffer.from('not a jpeg');
    samples[4]!.image = Buffer.from('nor this');
    await writeShard(join(dir, 'b.tar'), samples);
    const met: { name: string; reason: string; count: number }[] = [];
    const base = { data: join(dir, 'b.tar'), batchSize: 2, maxSteps: 3, shuffleBuffer: 0, checkpointEvery: 0, distributed: false as const, onBadImage: (i: any) => met.push(i) };
    const r = await trainTokenizer(join(root, 'tok.yaml'), { ...base, outDir: join(root, 'bad-ok') });
    expect(r.skipped).toBe(2);
    // batches are decoded ahead, concurrently: the order they are met in may vary, the count goes 1, 2
    expect(met.map((m) => m.name).sort()).toEqual([`${join(dir, 'b.tar')}:k1.jpg`, `${join(dir, 'b.tar')}:k4.jpg`]);
    expect(met.map((m) => m.count)).toEqual([1, 2]);
    expect(met[0]!.reason).toMatch(/not a decodable image/);
    const last = JSON.parse(readFileSync(join(root, 'bad-ok', 'log.jsonl'), 'utf8').trim().split('\n').pop()!);
    expect(last.skipped).toBe(2);
    // beyond the limit: the error names the count, the limit and the last image met (k1 or k4: decoding order, as above)
    await expect(trainTokenizer(join(root, 'tok.yaml'), { ...base, outDir: join(root, 'bad-stop'), maxBadImages: 1 }))
      .rejects.toMatchObject({ code: 'ERR_IBQ_BAD_IMAGE', message: expect.stringMatching(/2 bad images, more than maxBadImages \(--max-bad-images\) 1; the last: .*b\.tar:k[14]\.jpg: not a decodable/) });
    // the CLI: the line on stderr names the sample, the summary counts it
    const cli = await ibq(['train-tokenizer', '--config', join(root, 'tok.yaml'), '--data', join(dir, 'b.tar'), '--out', join(root, 'bad-cli'),
      '--batch-size', '2', '--max-steps', '2', '--shuffle-buffer', '0', '--checkpoint-every', '0']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toMatch(/ibq: bad image .*b\.tar:k1\.jpg: not a decodable image .*\(skipped; 1 so far\)/);
    expect(JSON.parse(cli.stdout.trim().split('\n').pop()!).skipped).toBe(1);
  }, 300_000);
});

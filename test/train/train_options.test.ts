// What the YAML gives a training when the caller leaves it out (README's options table: batchSize from
// data.init_args.batch_size, maxEpochs from trainer.max_epochs), in the library and not only in the CLI; tokenizer
// presets as --config; one LPIPS flag for every command; numeric CLI defaults printed as numbers.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';

import { loadCheckpoint, tensor, trainTokenizer, trainTransformer } from '../../dist/index.js';
import { buildProgram } from '../../dist/cli/index.js';
import { run } from '../support/run.js';

const BIN = resolve(__dirname, '..', '..', 'bin', 'ibq.js');
const AR = { vocab_size: 16, block_size: 16, n_layer: 1, n_head: 2, n_embd: 16, class_num: 2, multiple_of: 16 };

function tokens(n: number) {
  return {
    tokens: tensor(BigInt64Array.from({ length: n * AR.block_size }, (_, i) => BigInt((i * 7) % AR.vocab_size)), [n, AR.block_size]),
    labels: tensor(BigInt64Array.from({ length: n }, (_, i) => BigInt(i % AR.class_num)), [n]),
  };
}

describe('defaults from the YAML in the library', () => {
  it('trainTransformer(yaml, { outDir }) takes batch_size and max_epochs from the YAML', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-yaml-defaults-'));
    const yaml = join(dir, 'ar.yaml');
    const batch = 3, epochs = 2, n = 7; // drop_last: floor(7 / 3) = 2 steps per epoch
    writeFileSync(yaml, stringify({
      trainer: { max_epochs: epochs },
      model: { class_path: 'src.IBQ.models.cond_transformer_llama.Net2NetTransformer', init_args: { transformer_config: { params: AR } } },
      data: { init_args: { batch_size: batch } },
    }));
    const r = await trainTransformer(yaml, { outDir: join(dir, 'run'), tokens: tokens(n), distributed: false });
    const steps = Math.floor(n / batch) * epochs;
    expect(r.globalStep).toBe(steps);
    expect(readFileSync(join(dir, 'run', 'log.jsonl'), 'utf8').trim().split('\n')).toHaveLength(steps);
    const ck = await loadCheckpoint(join(dir, 'run', 'last.ckpt'));
    expect(Number((ck.meta as { ibq_train?: { batch_size?: unknown } }).ibq_train?.batch_size)).toBe(batch);
    r.model.dispose();
    // an explicit option still wins
    const r2 = await trainTransformer(yaml, { outDir: join(dir, 'run2'), tokens: tokens(n), batchSize: 2, maxSteps: 1, distributed: false });
    expect(r2.globalStep).toBe(1);
    r2.model.dispose();
  });

  it('without a YAML (preset, config object) batchSize is required, and the error says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-yaml-defaults-'));
    await expect(trainTransformer(AR, { outDir: join(dir, 'a'), tokens: tokens(4) })).rejects.toThrow(/batchSize: .*has no data\.init_args\.batch_size/);
    await expect(trainTokenizer('IBQ-1024', { outDir: join(dir, 'b'), data: dir })).rejects.toThrow(/batchSize: .*IBQ-1024 has no data\.init_args\.batch_size/);
    await expect(trainTokenizer('IBQ-1000', { outDir: join(dir, 'c'), data: dir, batchSize: 1 })).rejects.toThrow(/unknown preset 'IBQ-1000'/);
  });
});

describe('train-tokenizer flags', () => {
  const ibq = (args: string[]) => run(process.execPath, [BIN, ...args], { timeout: 60_000, env: { ...process.env, IBQ_LPIPS_WEIGHTS: '' } });

  it('--config takes a preset name, as train-ar does; --lpips-weights DIR as demo and eval-tokenizer take it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-tok-flags-'));
    const r = await ibq(['train-tokenizer', '--config', 'IBQ-1024', '--data', dir, '--out', join(dir, 'out'), '--lpips-weights', dir]);
    expect(r.status).not.toBe(0);
    // the preset was read (no YAML error); the folder named lacks the LPIPS files, which the error names
    expect(r.stderr).not.toMatch(/YAML|unknown preset/);
    expect(r.stderr).toMatch(new RegExp(`LPIPS vgg weights not found in ${dir}: it needs vgg16-397923af\\.pth .* and vgg\\.pth`));
    const both = await ibq(['train-tokenizer', '--config', 'IBQ-1024', '--data', dir, '--lpips-weights', dir, '--lpips-ckpt', 'x.ckpt']);
    expect(both.stderr).toMatch(/--lpips-weights, --lpips-ckpt: give the LPIPS weights one way/);
    const half = await ibq(['train-tokenizer', '--config', 'IBQ-1024', '--data', dir, '--lpips-vgg16', 'a.pth']);
    expect(half.stderr).toMatch(/--lpips-vgg16 and --lpips-lin go together/);
  });
});

describe('CLI help', () => {
  it('numeric defaults print as numbers in every command (default: 0), never quoted', () => {
    const quoted: string[] = [];
    const numeric: string[] = [];
    const visit = (cmd: ReturnType<typeof buildProgram>) => {
      const help = cmd.helpInformation().replace(/\s+/g, ' '); // lines wrapped to the terminal width
      for (const m of help.matchAll(/\(default: ("?)(-?\d+(?:\.\d+)?)\1\)/g)) (m[1] ? quoted : numeric).push(`${cmd.name()}: ${m[0]}`);
      for (const c of cmd.commands) visit(c as ReturnType<typeof buildProgram>);
    };
    visit(buildProgram());
    expect(quoted).toEqual([]);
    expect(numeric).toContain('train-ar: (default: 1000)');
    expect(numeric).toContain('launch: (default: 29500)');
  });
});

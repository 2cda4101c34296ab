/**
 * `ibq sample` (class-conditional generation, mirrors the official sample script) and `ibq train-ar`
 * (AR training). SIGINT aborts cleanly (training saves its checkpoint first).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import type { Command } from 'commander';

import { loadSafetensors, saveSafetensors } from '../io/index.js';
import { tensor } from '../tensor.js';
import { Transformer } from '../transformer.js';
import {
  arTrainConfigFromYaml, resolveTransformerConfig, TRANSFORMER_PRESETS, transformerConfigFromYaml, type TransformerConfig,
} from '../transformer_config.js';
import { trainTransformer } from '../transformer_train.js';

function num(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new RangeError(`--${name}: expected a number, got '${v}'`);
    return n;
  };
}

/** '0,1,2' | 'all' -> class ids; `--chunk I/N` keeps the I-th of N contiguous parts (0-based). */
export function parseClasses(spec: string, classNum: number, chunk?: string): number[] {
  let ids: number[];
  if (spec === 'all') ids = Array.from({ length: classNum }, (_, i) => i);
  else {
    ids = spec.split(',').map((s) => {
      const n = Number(s.trim());
      if (!Number.isInteger(n) || n < 0 || n >= classNum) {
        throw new RangeError(`--classes: class ids must be integers in [0, ${classNum - 1}], got '${s}'`);
      }
      return n;
    });
  }
  if (chunk === undefined) return ids;
  const m = /^(\d+)\/(\d+)$/.exec(chunk);
  if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new RangeError(`--chunk: expected I/N with 0 <= I < N, got '${chunk}'`);
  const [i, n] = [Number(m[1]), Number(m[2])];
  const per = Math.ceil(ids.length / n);
  return ids.slice(i * per, (i + 1) * per);
}

function onSigint(): AbortController {
  const ac = new AbortController();
  process.once('SIGINT', () => {
    console.error('\nibq: interrupted, stopping after the current step…');
    ac.abort();
  });
  return ac;
}

function configOption(v: string | undefined) {
  if (v === undefined) return undefined;
  return (TRANSFORMER_PRESETS as readonly string[]).includes(v) ? v : transformerConfigFromYaml(v);
}

/** A preset's config as plain official fields (no derived values). */
function presetConfig(name: string): TransformerConfig {
  if (!(TRANSFORMER_PRESETS as readonly string[]).includes(name)) {
    throw new RangeError(`--config: expected a YAML path or one of ${TRANSFORMER_PRESETS.join(', ')}, got '${name}'`);
  }
  const { parameterCount: _n, preset: _p, ...c } = resolveTransformerConfig(name);
  return c;
}

export function register(program: Command): void {
  program
    .command('sample')
    .description('class-conditional sampling with the AR transformer (tokens; images need --tokenizer)')
    .requiredOption('--ar <ckpt>', 'AR checkpoint (official .ckpt or a train-ar .safetensors)')
    .option('--tokenizer <ckpt>', 'tokenizer checkpoint to decode the tokens into images')
    .option('--config <yaml|preset>', 'AR config: YAML (official layout) or B, L, XL, XXL')
    .option('--classes <list>', "class ids '0,1,2' or 'all'", 'all')
    .option('--per-class <n>', 'samples per class', num('per-class'), 1)
    .option('--cfg-scale <x>', 'classifier-free guidance scale (<= 1: none)', num('cfg-scale'), 1.0)
    .option('--temperature <t>', 'softmax temperature (0: greedy)', num('temperature'), 1.0)
    .option('--top-k <k>', 'top-k filtering (0: off)', num('top-k'), 0)
    .option('--top-p <p>', 'nucleus filtering in (0, 1]', num('top-p'), 1.0)
    .option('--seed <s>', 'torch.manual_seed before each batch', num('seed'), 42)
    .option('--batch-size <n>', 'images per native sampling call', num('batch-size'), 50)
    .option('--out <dir>', 'output folder', 'samples')
    .option('--npz', 'also write the ADM-evaluator .npz (needs --tokenizer)')
    .option('--chunk <I/N>', 'process the I-th of N parts of the class list (0-based)')
    .action(async (o) => {
      const tr = await Transformer.fromCheckpoint(o.ar, { config: configOption(o.config) });
      const classes = parseClasses(o.classes, tr.config.class_num, o.chunk);
      const labels = classes.flatMap((c) => Array<number>(o.perClass).fill(c));
      if (o.tokenizer !== undefined || o.npz) {
        // TODO(issue 4): decode with Tokenizer.fromCheckpoint + generate() once the tokenizer has landed.
        throw new Error('--tokenizer/--npz: image decoding needs the tokenizer (issue 4), which this build lacks');
      }
      mkdirSync(o.out, { recursive: true });
      const ac = onSigint();
      const rows: BigInt64Array[] = [];
      for (let i = 0; i < labels.length; i += o.batchSize) {
        const batch = labels.slice(i, i + o.batchSize);
        const t = await tr.sample({
          labels: batch, cfgScale: o.cfgScale, temperature: o.temperature, topK: o.topK, topP: o.topP,
          seed: o.seed + i, signal: ac.signal,
        });
        rows.push((await t.data()) as BigInt64Array);
        console.error(`sampled ${Math.min(i + o.batchSize, labels.length)}/${labels.length}`);
      }
      const L = tr.config.block_size;
      const flat = new BigInt64Array(labels.length * L);
      let off = 0;
      for (const r of rows) (flat.set(r, off), (off += r.length));
      const file = join(o.out, `tokens${o.chunk ? '-' + o.chunk.replace('/', 'of') : ''}.safetensors`);
      await saveSafetensors(file, new Map([
        ['tokens', tensor(flat, [labels.length, L])],
        ['labels', tensor(BigInt64Array.from(labels, BigInt), [labels.length])],
      ]));
      console.log(file);
    });

  program
    .command('train-ar')
    .description('train the AR transformer on tokenizer indices (next-token cross-entropy)')
    .requiredOption('--config <yaml|preset>', 'AR config (official YAML layout) or B, L, XL, XXL')
    .option('--tokenizer <ckpt>', 'frozen tokenizer checkpoint (with --data)')
    .option('--data <dir>', 'image folder with class sub-folders (with --tokenizer)')
    .option('--tokens <file>', 'pre-computed tokens: safetensors with int64 tokens [N, L] and labels [N]')
    .option('--out <dir>', 'output folder (log.jsonl, last.safetensors)', 'runs/ar')
    .option('--max-steps <n>', 'training steps', num('max-steps'))
    .option('--batch-size <n>', 'sequences per step', num('batch-size'), 32)
    .option('--lr <x>', 'peak learning rate (overrides the YAML)', num('lr'))
    .option('--seed <s>', 'seed', num('seed'), 0)
    .option('--resume', 'continue from <out>/last.safetensors')
    .action(async (o) => {
      const cfg = /\.ya?ml$/i.test(o.config)
        ? arTrainConfigFromYaml(o.config)
        : { transformer_config: { params: presetConfig(o.config) } };
      if (o.lr !== undefined) Object.assign(cfg, { learning_rate: o.lr });
      let tokens;
      if (o.tokens) {
        const m = await loadSafetensors(o.tokens);
        if (!m.has('tokens') || !m.has('labels')) throw new RangeError(`--tokens: ${o.tokens} needs 'tokens' and 'labels' tensors`);
        tokens = { tokens: m.get('tokens')!, labels: m.get('labels')! };
      } else if (o.tokenizer || o.data) {
        // TODO(issue 4): Tokenizer.fromCheckpoint(o.tokenizer) + tokensFromImages once the tokenizer has landed.
        throw new Error('--tokenizer/--data: encoding images needs the tokenizer (issue 4), which this build lacks; use --tokens');
      } else {
        throw new RangeError('train-ar: give --tokens FILE, or --tokenizer CKPT with --data DIR');
      }
      const ac = onSigint();
      const r = await trainTransformer(cfg, {
        tokens, outDir: o.out, maxSteps: o.maxSteps, batchSize: o.batchSize, seed: o.seed, resume: !!o.resume,
        signal: ac.signal,
        onStep: (l) => process.stderr.write(`\rstep ${l.step} loss ${l.loss.toFixed(4)} lr ${l.lr.toExponential(2)}   `),
      });
      process.stderr.write('\n');
      console.log(JSON.stringify({ steps: r.steps, aborted: r.aborted, loss: r.lastLoss, out: o.out }));
    });
}

// README.md as users read it, so that it cannot rot:
//  - every ```js block runs as written (a fresh process, `import ... from 'ibq-native'`) in a temporary folder that
//    holds small stand-ins under the file names the README uses (tokenizer and AR checkpoints, an image, an AR YAML,
//    an image folder). A block can be excluded only by an HTML comment right above it that gives the reason:
//    <!-- readme-test: skip (needs ...) -->;
//  - every `--flag` given to an `ibq` command (or `npm run demo --`) in the ```sh blocks is a flag of that command;
//  - every command of the CLI, every error code of ERROR_CODES and every package file the README names exists.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Command } from 'commander';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';

import { ERROR_CODES, saveCheckpoint, tensor, Tokenizer, Transformer, type TokenizerConfig } from '../../dist/index.js';
import { buildProgram } from '../../dist/cli/index.js';
import { run } from '../support/run.js';

const root = join(__dirname, '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

interface Block {
  lang: string;
  code: string;
  line: number;
  skip?: string;
}

function codeBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const before = text.slice(0, m.index);
    const marker = /<!--\s*readme-test:\s*skip\s*(?:\((.*?)\))?\s*-->\s*$/.exec(before);
    blocks.push({ lang: m[1]!, code: m[2]!, line: before.split('\n').length, skip: marker ? marker[1]?.trim() ?? '' : undefined });
  }
  return blocks;
}

const blocks = codeBlocks(readme);
const jsBlocks = blocks.filter((b) => b.lang === 'js');

// ---- the stand-ins: small models under the README's file names (their sizes are the README's, not the official)
const TOKENIZER: TokenizerConfig = {
  ddconfig: { double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  n_embed: 64, embed_dim: 8,
};
const TOKENS = (32 / 2) ** 2; // a 32 x 32 image is 16 x 16 tokens

async function writeStandIns(dir: string): Promise<void> {
  // IBQ-Tokenizer-16384.ckpt: weights and EMA weights (model_ema.<name without dots>), Lightning-shaped
  const tok = Tokenizer.create(TOKENIZER, { seed: 1 });
  const sd = tok.stateDict();
  const params = new Set(tok.parameterNames());
  const withEma = new Map(sd);
  for (const [k, t] of sd) if (params.has(k)) withEma.set(`model_ema.${k.replace(/\./g, '')}`, t);
  withEma.set('model_ema.decay', tensor([0.999], []));
  withEma.set('model_ema.num_updates', tensor([0], [], { dtype: 'int32' }));
  await saveCheckpoint(join(dir, 'IBQ-Tokenizer-16384.ckpt'), { stateDict: withEma, meta: { global_step: 0 } });

  // AR_256_B.ckpt: the official AR checkpoint layout (transformer.* keys, hyper_parameters.transformer_config) of a
  // transformer over that tokenizer's codes with the 1000 ImageNet classes the example's labels come from
  const arConfig = { vocab_size: 64, block_size: 16, n_layer: 1, n_head: 2, n_embd: 16, class_num: 1000, multiple_of: 16 };
  const tr = Transformer.create(arConfig, { seed: 2 });
  const arSd = new Map([...tr.stateDict()].map(([k, t]) => [`transformer.${k}`, t]));
  await saveCheckpoint(join(dir, 'AR_256_B.ckpt'), { stateDict: arSd, meta: { hyper_parameters: { transformer_config: { params: arConfig } } } });

  // photo.jpg, and imagefolder/<class>/*.png
  const image = (size: number, seed: number) => {
    const px = Buffer.alloc(size * size * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i * 37 + seed * 101 + ((i / 3) % size) * 5) % 256;
    return sharp(px, { raw: { width: size, height: size, channels: 3 } });
  };
  await image(48, 0).jpeg().toFile(join(dir, 'photo.jpg'));
  for (const [c, cls] of ['cat', 'dog'].entries()) {
    mkdirSync(join(dir, 'imagefolder', cls), { recursive: true });
    for (let k = 0; k < 3; k++) await image(32, 10 * c + k).png().toFile(join(dir, 'imagefolder', cls, `${k}.png`));
  }

  // ar.yaml: an AR YAML in the layout of configs/IBQ/gpu/imagenet_cond_llama_B.yaml, small
  writeFileSync(join(dir, 'ar.yaml'), stringify({
    trainer: { max_epochs: 1 },
    model: {
      class_path: 'src.IBQ.models.cond_transformer_llama.Net2NetTransformer',
      init_args: {
        learning_rate: 1e-3,
        transformer_config: { target: 'src.IBQ.modules.transformer.llama.GPT', params: { ...arConfig, block_size: TOKENS, class_num: 2 } },
        first_stage_config: { target: 'src.IBQ.models.ibqgan.IBQ', params: TOKENIZER },
      },
    },
    data: { init_args: { batch_size: 2 } },
  }));

  // `import ... from 'ibq-native'` resolves to this checkout
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'ibq-native'), 'dir');
}

describe('README: the JavaScript examples run as written', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ibq-readme-'));
    await writeStandIns(dir);
  }, 120_000);

  it('the README has JavaScript examples, and a skipped one says why', () => {
    expect(jsBlocks.length).toBeGreaterThanOrEqual(4);
    for (const b of jsBlocks.filter((x) => x.skip !== undefined)) {
      expect(b.skip, `README.md:${b.line}: a readme-test skip needs a reason in parentheses`).not.toBe('');
    }
  });

  for (const [i, b] of jsBlocks.entries()) {
    it.skipIf(b.skip !== undefined)(`block ${i + 1} (README.md:${b.line})${b.skip ? ` [skipped: ${b.skip}]` : ''}`, async () => {
      const file = join(dir, `block-${i + 1}.mjs`);
      writeFileSync(file, b.code);
      const r = await run(process.execPath, [file], { cwd: dir, timeout: 180_000 });
      expect(r.status, `README.md:${b.line}:\n${b.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);
    }, 200_000);
  }
});

/** Flags of a command; `ibq ckpt inspect` style subcommands by their path. */
function findCommand(program: Command, words: string[]): { cmd: Command; used: number } | undefined {
  let cmd: Command | undefined;
  let used = 0;
  for (const w of words) {
    const next: Command | undefined = (cmd ?? program).commands.find((c) => c.name() === w);
    if (!next) break;
    cmd = next;
    used++;
  }
  return cmd ? { cmd, used } : undefined;
}

describe('README: commands, flags, codes and files exist', () => {
  const program = buildProgram();

  it('every flag given to an ibq command in the shell examples is one of its flags', () => {
    const problems: string[] = [];
    const shell = blocks.filter((b) => b.lang === 'sh');
    const invocations: { words: string[]; line: number }[] = [];
    for (const b of shell) {
      const lines = b.code.replace(/\\\n\s*/g, ' ').split('\n');
      for (const raw of lines) {
        const line = raw.replace(/(^|\s)#.*$/, '');
        // `ibq X ...`, `ibq launch ... -- X ...`, `npm run demo -- ...`
        for (const m of line.matchAll(/(?:^|\s)(?:ibq|node bin\/ibq\.js)\s+(.*)$/g)) {
          const words = m[1]!.split(/\s+/).filter(Boolean);
          const dash = words.indexOf('--');
          if (words[0] === 'launch' && dash > 0) {
            invocations.push({ words: words.slice(0, dash), line: b.line });
            invocations.push({ words: words.slice(dash + 1), line: b.line });
          } else invocations.push({ words, line: b.line });
        }
        const demo = /npm run demo -- (.*)$/.exec(line);
        if (demo) invocations.push({ words: ['demo', ...demo[1]!.split(/\s+/)], line: b.line });
      }
    }
    expect(invocations.length).toBeGreaterThan(10);
    const seen = new Set<string>();
    for (const { words, line } of invocations) {
      const found = findCommand(program, words);
      if (!found) {
        problems.push(`README.md:${line}: no ibq command '${words[0]}'`);
        continue;
      }
      seen.add(found.cmd.name());
      // the program's own options (--threads) are flags of every command
      const known = new Set([...found.cmd.options, ...program.options].map((o) => o.long).concat('--help'));
      for (const w of words.slice(found.used)) {
        const flag = /^\[?(--[a-z0-9-]+)/.exec(w)?.[1];
        if (flag && !known.has(flag)) problems.push(`README.md:${line}: ibq ${words.slice(0, found.used).join(' ')} has no flag ${flag}`);
      }
    }
    expect(problems).toEqual([]);
    expect(seen.size).toBeGreaterThan(8);
  });

  it('every command of the CLI is documented', () => {
    const names: string[] = [];
    for (const c of program.commands) {
      if (c.commands.length) names.push(...c.commands.map((s) => `${c.name()} ${s.name()}`));
      else names.push(c.name());
    }
    const missing = names.filter((n) => {
      const [group, sub] = n.split(' ');
      return !readme.includes(`ibq ${n}`) && !(sub && new RegExp(`ibq ${group} (\\w+\\|)*${sub}\\b`).test(readme));
    });
    expect(missing).toEqual([]);
  });

  it('every error code of ERROR_CODES is listed', () => {
    expect(Object.keys(ERROR_CODES).filter((c) => !readme.includes(`\`${c}\``))).toEqual([]);
  });

  it('every file of the package the README names exists', () => {
    const named = new Set<string>();
    for (const m of readme.matchAll(/(?<![\w./])((?:configs|scripts|lib|native|docs|test)\/[\w./{},*-]*|data\/fashion-mnist[\w./-]*)/g)) {
      const p = m[1]!.replace(/[.,]$/, '');
      if (p.includes('*')) continue;
      const brace = /\{([^}]*)\}/.exec(p);
      for (const alt of brace ? brace[1]!.split(',').map((a) => p.replace(brace[0], a)) : [p]) named.add(alt);
    }
    expect(named.size).toBeGreaterThan(15);
    expect([...named].filter((p) => !existsSync(join(root, p)))).toEqual([]);
  });
});

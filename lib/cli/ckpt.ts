/** `ibq ckpt inspect FILE [--json]` and `ibq ckpt convert IN OUT [--ema] [--prefix P]` (.ckpt <-> .safetensors). */
import type { Command } from 'commander';

import { checkWritableTarget, sameFile } from '../io/files.js';
import { saveSafetensors } from '../io/safetensors.js';
import { plainConfig } from '../io/plain_config.js';
import { saveCheckpoint } from '../io/save.js';
import { addPrefix, EMA_PREFIX, emaStateDict, isEmaBookkeeping, stripPrefix } from '../io/state_dict.js';
import { summarize, tensorBytes } from '../io/summary.js';
import { loadWeightsFile } from '../io/weights_file.js';
import { Tensor } from '../core/tensor.js';

const isSafetensors = (p: string) => p.toLowerCase().endsWith('.safetensors');

const load = loadWeightsFile;

function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export async function inspectCommand(file: string, opts: { json?: boolean }, print = console.log): Promise<void> {
  const ck = await load(file);
  const tensors = [...ck.stateDict].map(([key, t]) => ({ key, dtype: t.dtype, shape: t.shape, bytes: tensorBytes(t) }));
  const totalBytes = tensors.reduce((a, t) => a + t.bytes, 0);
  const meta = summarize(ck.meta);
  if (opts.json) {
    print(JSON.stringify({ file, format: ck.format, tensors, totalBytes, meta }, null, 2));
    return;
  }
  print(`${file} (${ck.format}): ${tensors.length} tensors, ${human(totalBytes)}`);
  const width = Math.min(80, Math.max(0, ...tensors.map((t) => t.key.length)));
  for (const t of tensors) print(`  ${t.key.padEnd(width)}  ${t.dtype.padEnd(8)}  [${t.shape.join(', ')}]  ${human(t.bytes)}`);
  const keys = Object.keys(ck.meta);
  if (keys.length) {
    print('meta:');
    for (const k of keys) print(`  ${k}: ${JSON.stringify((meta as Record<string, unknown>)[k]).slice(0, 200)}`);
  }
}

/** EMA weights mapped onto the checkpoint's own keys (`model_ema.<key without dots>` -> key). */
function emaFromKeys(sd: Map<string, Tensor>): Map<string, Tensor> {
  const names = [...sd.keys()].filter((k) => !k.startsWith(EMA_PREFIX) && sd.has(EMA_PREFIX + k.replace(/\./g, '')));
  if (names.length === 0) throw new Error('--ema: the checkpoint has no model_ema.* weights');
  const ema = emaStateDict(sd, names);
  for (const k of sd.keys()) if (k.startsWith(EMA_PREFIX) && !isEmaBookkeeping(k) && ![...names].some((n) => EMA_PREFIX + n.replace(/\./g, '') === k)) {
    throw new Error(`--ema: ${k} matches no key of the checkpoint`);
  }
  return ema;
}

export async function convertCommand(input: string, output: string, opts: { ema?: boolean; prefix?: string }): Promise<void> {
  if (await sameFile(input, output)) throw new Error(`ckpt convert: <out> ${output} is the input file ${input}; choose another output path`);
  await checkWritableTarget(output, '<out>');
  const ck = await load(input);
  let sd = ck.stateDict;
  if (opts.ema) sd = emaFromKeys(sd);
  if (isSafetensors(output)) {
    if (opts.prefix) sd = stripPrefix(sd, opts.prefix);
    // the config travels in the metadata (as JSON), so that loading infers no other resolution or config
    const hp = ck.meta?.hyper_parameters;
    const metadata: Record<string, string> = { format: 'pt' };
    if (hp !== undefined) {
      try {
        metadata.hyper_parameters = JSON.stringify(plainConfig(hp), (_k, v) => (typeof v === 'bigint' ? Number(v) : v instanceof Tensor ? undefined : v));
      } catch {
        console.error('ibq ckpt convert: hyper_parameters are not JSON (cycles); the .safetensors file holds no config');
      }
    }
    await saveSafetensors(output, sd, metadata);
  } else {
    if (opts.prefix) sd = addPrefix(sd, opts.prefix);
    await saveCheckpoint(output, { stateDict: sd, meta: ck.meta });
  }
}

export function register(program: Command): void {
  const ckpt = program.command('ckpt').description('inspect and convert checkpoints (.ckpt/.pth/.pt, .safetensors)');
  ckpt
    .command('inspect')
    .argument('<file>', 'a torch.save / Lightning checkpoint or a .safetensors file')
    .option('--json', 'print JSON (keys, dtypes, shapes, bytes, meta summary; cycles as {"$ref": path})')
    .description('list the tensors (key, dtype, shape, bytes) and summarize the other entries')
    .action((file: string, opts: { json?: boolean }) => inspectCommand(file, opts));
  ckpt
    .command('convert')
    .argument('<in>', 'input checkpoint (.ckpt/.pth/.pt or .safetensors)')
    .argument('<out>', 'output file (not the input; an existing read-only file is refused); .safetensors writes the ' +
      'state_dict only, anything else a torch.save file whose non-tensor entries keep their Python classes for ' +
      'OmegaConf configs, argparse Namespaces and pathlib paths, and become plain dicts for objects of other classes')
    .option('--ema', 'use the EMA weights (model_ema.*) in place of the regular parameters')
    .option('--prefix <prefix>', 'to .safetensors: keep keys under this prefix and remove it; to a checkpoint: prepend it')
    .description('convert between torch checkpoints and safetensors (written atomically)')
    .action((input: string, output: string, opts: { ema?: boolean; prefix?: string }) => convertCommand(input, output, opts));
}

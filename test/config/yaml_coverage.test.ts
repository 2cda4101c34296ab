// Every field of every YAML in configs/ (the official training YAMLs included) is honoured or named with what
// happens instead; the Lightning sections parse into the run's settings; the one warning compares
// trainer.devices / trainer.num_nodes with the launched world.
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { readConfig } from '../../dist/index.js';
import { UNKNOWN_FIELD } from '../../dist/config/lightning.js';
import { checkpointName } from '../../dist/train/callbacks/checkpoint.js';
import { notAppliedWarning, yamlFieldNotes } from '../../dist/train/yaml_fields.js';

const ROOT = join(__dirname, '..', '..');

function yamls(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? yamls(p) : /\.ya?ml$/.test(f) ? [p] : [];
  });
}

/** Every leaf path of a parsed YAML as the notes write them (list items as [i] only under trainer.callbacks / logger). */
function leafPaths(v: unknown, path: string, out: string[]): string[] {
  if (Array.isArray(v) && /^trainer\.(callbacks|logger)$/.test(path)) v.forEach((x, i) => leafPaths(x, `${path}[${i}]`, out));
  else if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) leafPaths(x, path ? `${path}.${k}` : k, out);
  } else out.push(path);
  return out;
}

describe('YAML coverage', () => {
  const files = yamls(join(ROOT, 'configs'));

  it('finds the official training YAMLs among the configs', () => {
    expect(files.map((f) => f.slice(ROOT.length + 1))).toEqual(expect.arrayContaining([
      'configs/IBQ/gpu/imagenet_ibqgan_16384.yaml', 'configs/IBQ/gpu/imagenet_ibqgan_262144.yaml', 'configs/IBQ/gpu/imagenet_cond_llama_B.yaml',
    ]));
  });

  it.each(files.map((f) => [f.slice(ROOT.length + 1), f]))('%s: every field is honoured or named with what happens instead', (_, file) => {
    const cfg = readConfig(file);
    const notes = yamlFieldNotes(cfg.raw, cfg.run);
    const covered = new Set(notes.map((n) => n.path));
    // each leaf is covered by its own note or by a note on a section above it
    const uncovered = leafPaths(cfg.raw, '', []).filter((p) => ![...covered].some((c) => p === c || p.startsWith(`${c}.`) || p.startsWith(`${c}[`)));
    expect(uncovered).toEqual([]);
    expect(notes.filter((n) => n.instead === UNKNOWN_FIELD).map((n) => n.path)).toEqual([]);
  });

  it('parses the Lightning sections of the official tokenizer YAML into the run settings', () => {
    const { run } = readConfig(join(ROOT, 'configs/IBQ/gpu/imagenet_ibqgan_16384.yaml'));
    const l = run.lightning!;
    expect(l.checkValEveryNEpoch).toBe(1);
    expect(l.numSanityValSteps).toBe(-1);
    expect(l.logEveryNSteps).toBe(100);
    expect(l.strategy).toBe('ddp_find_unused_parameters_true');
    expect(l.validation).toBe(true);
    expect(l.numWorkers).toBe(16);
    expect(l.lrMonitor).toBe(true);
    expect(l.tensorboard).toEqual({ saveDir: 'results/ibq_16384', name: '', version: 'run' });
    expect(l.checkpoints).toEqual([{
      dirpath: 'checkpoints/ibq_16384', filename: '{epoch}-{step}', monitor: 'train/perceptual_loss', mode: 'min', saveTopK: 20,
      saveLast: true, everyNTrainSteps: undefined, everyNEpochs: 1, autoInsertMetricName: true,
    }]);
    expect(l.seed).toBeUndefined(); // seed_everything: true draws a seed in Lightning: named, not applied
    const notes = yamlFieldNotes(readConfig(join(ROOT, 'configs/IBQ/gpu/imagenet_ibqgan_16384.yaml')).raw, run);
    expect(notes.find((n) => n.path === 'seed_everything')?.instead).toMatch(/--seed/);
    expect(notes.find((n) => n.path === 'trainer.strategy')?.instead).toBeUndefined();
  });

  it('warns about trainer.devices / num_nodes only when they disagree with the launched world', () => {
    const cfg = readConfig(join(ROOT, 'configs/IBQ/gpu/imagenet_ibqgan_16384.yaml')); // devices 8, num_nodes 8
    const match = notAppliedWarning(cfg.raw, cfg.run, { worldSize: 64, localWorldSize: 8 })!;
    expect(match).not.toMatch(/trainer\.devices/);
    const one = notAppliedWarning(cfg.raw, cfg.run, { worldSize: 1, localWorldSize: 1 })!;
    expect(one).toMatch(/trainer\.devices 8 \/ trainer\.num_nodes 8 \(launched: 1 process\(es\) per node on 1 node\(s\)/);
    const otherNodes = notAppliedWarning(cfg.raw, cfg.run, { worldSize: 16, localWorldSize: 8 })!;
    expect(otherNodes).toMatch(/on 2 node\(s\)/);
    // each field named once
    const paths = one.replace(/^not applied from the YAML: /, '').split('; ').map((s) => s.split(' (')[0]);
    expect(new Set(paths).size).toBe(paths.length);
  });

  it('names other strategies, loggers and callbacks with what happens instead, and refuses malformed values naming the field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-yaml-'));
    try {
      const file = join(dir, 'c.yaml');
      writeFileSync(file, [
        'model: { class_path: x, init_args: {} }',
        'trainer:',
        '  strategy: fsdp',
        '  logger: { class_path: lightning.pytorch.loggers.WandbLogger }',
        '  callbacks: [{ class_path: lightning.pytorch.callbacks.EarlyStopping }]',
        '  max_time: 00:10:00:00',
      ].join('\n'));
      const cfg = readConfig(file);
      const byPath = Object.fromEntries(yamlFieldNotes(cfg.raw, cfg.run).map((n) => [n.path, n.instead]));
      expect(byPath['trainer.strategy']).toMatch(/fsdp runs as ddp/);
      expect(byPath['trainer.logger']).toMatch(/WandbLogger is not written/);
      expect(byPath['trainer.callbacks[0]']).toMatch(/EarlyStopping is not run/);
      expect(byPath['trainer.max_time']).toMatch(/no time limit/);
      writeFileSync(file, 'model: { class_path: x, init_args: {} }\ntrainer: { accumulate_grad_batches: 0 }\n');
      expect(() => readConfig(file)).toThrow(/c\.yaml: trainer\.accumulate_grad_batches: expected an integer >= 1, got 0/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ModelCheckpoint file names', () => {
  it('formats Lightning patterns', () => {
    expect(checkpointName('{epoch}-{step}', { epoch: 1, step: 20 })).toBe('epoch=1-step=20');
    expect(checkpointName('best-{val/rec_loss:.4f}', { 'val/rec_loss': 0.123456 })).toBe('best-val_rec_loss=0.1235');
    expect(checkpointName('{epoch:03d}', { epoch: 7 }, false)).toBe('007');
    expect(() => checkpointName('{val/psnr}', {})).toThrow(/filename: '\{val\/psnr\}' names val\/psnr, which is not logged/);
  });
});

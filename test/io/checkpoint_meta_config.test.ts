// Configs read from checkpoint meta (plainConfig over OmegaConf DictConfig / argparse Namespace), weights
// files told apart by their bytes (safetensors or torch) for both models and the CLI, `ibq ckpt convert`
// refusing to overwrite its input or a read-only file and re-creating OmegaConf/Namespace/pathlib objects,
// and the tokenizer CLI's --image-size default (ddconfig.resolution).
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  loadCheckpoint, loadNpy, loadSafetensors, loadWeightsFile, Opaque, plainConfig, saveCheckpoint, saveSafetensors, tensor,
  Tokenizer, Transformer, type Tensor,
} from '../../dist/index.js';
import { ints, maxAbsDiff } from '../support/compare.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';
import { HAVE_TORCH, runPython } from '../support/torch_ref.js';
import { run } from '../support/run.js';

const tmp = mkdtempSync(join(tmpdir(), 'ibq-meta-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const BIN = resolve(__dirname, '..', '..', 'bin', 'ibq.js');
const ibq = (...args: string[]) => run(process.execPath, [BIN, ...args], { timeout: 120_000 });

describe('plainConfig', () => {
  const node = (val: unknown, parent: unknown = null) => {
    const o = new Opaque('omegaconf.nodes.AnyNode', []);
    o.state = { _metadata: new Opaque('omegaconf.base.Metadata', []), _parent: parent, _val: val };
    return o;
  };
  it('unwraps DictConfig / ListConfig / value nodes / Namespace, keeps cycles, shared values and other objects', () => {
    const root = new Opaque('omegaconf.dictconfig.DictConfig', []);
    const list = new Opaque('omegaconf.listconfig.ListConfig', []);
    list.state = { _parent: root, _content: [node(1, list), node('${x}', list)] };
    const other = new Opaque('pathlib.PurePosixPath', ['/', 'x']);
    const t = tensor([1, 2], [2]);
    const plain: Record<string, unknown> = { a: 1 };
    plain.self = plain;
    root.state = { _parent: null, _content: { n: node(64, root), l: list, none: null, p: other, t, plain, again: plain } };
    const ns = new Opaque('argparse.Namespace', []);
    ns.state = { seed: 42, cfg: root };
    const out = plainConfig({ ns, m: new Map([[7, root]]) }) as any;
    expect(out.ns.seed).toBe(42);
    expect(out.ns.cfg.n).toBe(64);
    expect(out.ns.cfg.l).toEqual([1, '${x}']);
    expect(out.ns.cfg.none).toBeNull();
    expect(out.ns.cfg.p).toBe(other);
    expect(out.ns.cfg.t).toBe(t);
    expect(out.ns.cfg.plain.self).toBe(out.ns.cfg.plain);
    expect(out.ns.cfg.again).toBe(out.ns.cfg.plain);
    expect(out.m.get(7)).toBe(out.ns.cfg); // the same DictConfig -> the same object
    expect(plainConfig(5)).toBe(5);
  });
});

describe.skipIf(!HAVE_FIXTURES)('configs from checkpoint meta and weights files by their bytes', () => {
  const gpt = fixture('gpt', 'model.ckpt');
  let g: Map<string, Tensor>;
  beforeAll(async () => {
    g = await loadSafetensors(fixture('gpt', 'golden.safetensors'));
  });

  it('Transformer.fromCheckpoint(official Lightning ckpt with a DictConfig) needs no config: exact logits', async () => {
    const tr = await Transformer.fromCheckpoint(gpt);
    const kase = JSON.parse(readFileSync(fixture('gpt', 'case.json'), 'utf8'));
    for (const k of ['vocab_size', 'block_size', 'n_layer', 'n_head', 'n_embd', 'class_num']) expect(tr.config[k as 'vocab_size']).toBe(kase.config[k]);
    tr.eval();
    const tokens = g.get('tokens')!;
    const [B, T] = tokens.shape;
    const input = tensor((tokens.dataSync() as BigInt64Array).filter((_, i) => i % T! !== T! - 1), [B!, T! - 1], { dtype: 'int64' });
    const logits = await tr.forward(input, g.get('labels')!);
    expect(maxAbsDiff(logits, g.get('logits')!)).toBeLessThanOrEqual(1e-5);
    tr.dispose();
  });

  it('ibq sample --ar model.ckpt without --config: greedy tokens equal the fixture', async () => {
    const out = join(tmp, 'sample');
    const r = await ibq('sample', '--ar', gpt, '--classes', '0,6', '--cfg-scale', '2', '--temperature', '0', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const m = await loadSafetensors(join(out, 'tokens.safetensors'));
    expect(ints(m.get('tokens')!)).toEqual(ints(g.get('greedy')!));
  });

  it('a safetensors file without the extension loads for Transformer (by its bytes)', async () => {
    const ck = await loadCheckpoint(gpt);
    const file = join(tmp, 'gpt-weights.bin');
    await saveSafetensors(file, ck.stateDict);
    expect((await loadWeightsFile(file)).format).toBe('safetensors');
    const kase = JSON.parse(readFileSync(fixture('gpt', 'case.json'), 'utf8'));
    const tr = (await Transformer.fromCheckpoint(file, { config: kase.config })).eval();
    expect(ints(await tr.sample({ labels: [0, 6], cfgScale: 2, temperature: 0 }))).toEqual(ints(g.get('greedy')!));
    tr.dispose();
  });

  it('Tokenizer.fromCheckpoint and ibq tokenize accept safetensors: exact eval indices; --image-size defaults to the resolution', async () => {
    const ck = await loadCheckpoint(fixture('tokenizer', 'model.ckpt'));
    const file = join(tmp, 'tok.safetensors');
    await saveSafetensors(file, ck.stateDict);
    const renamed = join(tmp, 'tok-weights'); // no extension: detected by the bytes
    copyFileSync(file, renamed);
    const tg = await loadSafetensors(fixture('tokenizer', 'golden.safetensors'));
    for (const path of [file, renamed]) {
      const tok = (await Tokenizer.fromCheckpoint(path)).eval();
      expect(tok.config.ddconfig.resolution).toBe(32);
      const { indices } = await tok.encode(tg.get('x')!);
      expect(ints(indices)).toEqual(ints(tg.get('eval_indices')!));
      tok.dispose();
    }
    const png = join(tmp, 'img.png');
    await sharp({ create: { width: 40, height: 48, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toFile(png);
    const npy = join(tmp, 'idx.npy');
    const r = await ibq('tokenize', '--ckpt', renamed, png, '--out', npy);
    expect(r.status, r.stderr).toBe(0);
    expect((await loadNpy(npy)).shape).toEqual([1, 16, 16]); // 32 px / 2, not the old fixed 256 px
    const dir = join(tmp, 'outdir');
    mkdirSync(dir);
    const bad = await ibq('tokenize', '--ckpt', renamed, png, '--out', dir);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--out: .*outdir is a directory; expected a file path/);
  });

  it.skipIf(!HAVE_TORCH)('Tokenizer.fromCheckpoint completes the inferred config from OmegaConf hyper_parameters', async () => {
    const file = join(tmp, 'tok-omega.ckpt');
    await runPython(`
import sys, torch
from omegaconf import OmegaConf
ck = torch.load(sys.argv[1], map_location='cpu')
sd = {k: v for k, v in ck['state_dict'].items() if not k.startswith(('loss.', 'model_ema.'))}
dd = dict(double_z=False, z_channels=32, resolution=64, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[32], dropout=0.0)
cfg = OmegaConf.create({'model': {'class_path': 'src.IBQ.models.ibqgan.IBQ', 'init_args': {'ddconfig': dd, 'n_embed': 128, 'embed_dim': 16, 'beta': 0.5}}})
torch.save({'state_dict': sd, 'hyper_parameters': {'config': cfg}}, sys.argv[2])
`, [fixture('tokenizer', 'model.ckpt'), file]);
    const tok = await Tokenizer.fromCheckpoint(file);
    expect(tok.config.ddconfig.resolution).toBe(64);
    expect(tok.config.ddconfig.attn_resolutions).toEqual([32]);
    expect(tok.config.beta).toBe(0.5);
    expect(tok.config.use_entropy_loss).toBe(true); // not in the meta: the inferred (official) value stays
    tok.dispose();
    const png = join(tmp, 'img2.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 10, g: 130, b: 250 } } }).png().toFile(png);
    const npy = join(tmp, 'idx64.npy');
    const r = await ibq('tokenize', '--ckpt', file, png, '--out', npy);
    expect(r.status, r.stderr).toBe(0);
    expect((await loadNpy(npy)).shape).toEqual([1, 32, 32]);
  });
});

describe.skipIf(!HAVE_FIXTURES || !HAVE_TORCH)('ibq ckpt convert: targets and Python classes', () => {
  it('refuses to overwrite its input (same path, another spelling, a hard link) and leaves it intact', async () => {
    const src = join(tmp, 'conv-src.ckpt');
    copyFileSync(fixture('gpt', 'model.ckpt'), src);
    const before = readFileSync(src);
    const link = join(tmp, 'conv-link.ckpt');
    symlinkSync(src, link);
    for (const out of [src, join(tmp, '.', 'conv-src.ckpt'), link]) {
      const r = await ibq('ckpt', 'convert', src, out);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/is the input file/);
    }
    expect(readFileSync(src).equals(before)).toBe(true);
  });

  it('refuses a read-only target (also as root) and an existing directory, naming the path', async () => {
    const ro = join(tmp, 'readonly.safetensors');
    writeFileSync(ro, 'keep me');
    chmodSync(ro, 0o444);
    const r = await ibq('ckpt', 'convert', fixture('gpt', 'model.ckpt'), ro);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/readonly\.safetensors is read-only; refusing to overwrite it/);
    expect(readFileSync(ro, 'utf8')).toBe('keep me');
    expect(statSync(ro).mode & 0o777).toBe(0o444);
    const r2 = await ibq('ckpt', 'convert', fixture('gpt', 'model.ckpt'), tmp);
    expect(r2.status).not.toBe(0);
    expect(r2.stderr).toMatch(/is a directory; expected a file path/);
  });

  it('.ckpt -> .ckpt keeps DictConfig, Namespace and PurePosixPath as their classes for torch.load', async () => {
    const out = join(tmp, 'conv-out.ckpt');
    const r = await ibq('ckpt', 'convert', fixture('gpt', 'model.ckpt'), out);
    expect(r.status, r.stderr).toBe(0);
    const report = await runPython(`
import sys, argparse, pathlib, torch
from omegaconf import DictConfig, OmegaConf
a = torch.load(sys.argv[1]); b = torch.load(sys.argv[2])
h = a['hyper_parameters']
assert isinstance(h['config'], DictConfig), type(h['config'])
assert OmegaConf.to_container(h['config']) == OmegaConf.to_container(b['hyper_parameters']['config'])
assert h['config'].transformer_config.params.vocab_size == 64
assert h['config'].transformer_config._get_parent() is h['config']
assert isinstance(h['args'], argparse.Namespace) and vars(h['args']) == vars(b['hyper_parameters']['args'])
cb = next(iter(a['callbacks'].values()))
assert isinstance(cb['dirpath'], pathlib.PurePosixPath) and str(cb['dirpath']) == '/ckpts', cb['dirpath']
print('ok')
`, [out, fixture('gpt', 'model.ckpt')]);
    expect(report.trim()).toBe('ok');
    // and it reads back as the same Opaque structure, so the config is found again
    const tr = await Transformer.fromCheckpoint(out);
    expect(tr.config.vocab_size).toBe(64);
    tr.dispose();
  });

  it('objects of other classes are written as plain dicts (never re-created: no call of unknown globals)', async () => {
    const src = join(tmp, 'evil.ckpt');
    await runPython(`
import sys, torch, collections
class Foo:
    def __init__(self): self.x = 1
Foo.__module__ = 'somepkg.mod'
import types; m = types.ModuleType('somepkg.mod'); m.Foo = Foo; sys.modules['somepkg'] = types.ModuleType('somepkg'); sys.modules['somepkg.mod'] = m
torch.save({'state_dict': {'w': torch.zeros(2)}, 'foo': Foo()}, sys.argv[1])
`, [src]);
    const out = join(tmp, 'evil-out.ckpt');
    const r = await ibq('ckpt', 'convert', src, out);
    expect(r.status, r.stderr).toBe(0);
    const report = await runPython(`
import sys, torch
a = torch.load(sys.argv[1])
assert a['foo'] == {'__class__': 'somepkg.mod.Foo', 'args': [], 'state': {'x': 1}}, a['foo']
print('ok')
`, [out]);
    expect(report.trim()).toBe('ok');
  });
});

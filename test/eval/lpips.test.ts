// LPIPS (VGG16 / AlexNet) with random weights in the torchvision + LPIPS-lin key layouts and in the taming
// checkpoint layout (loss.perceptual_loss.*), against a reference LPIPS written in the Python script below
// (torch + torchvision, following the official formula); the Inception Score against numpy.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { codebookUsage, inceptionScore, loadCheckpoint, LPIPS, tensor, type Tensor } from '../../dist/index.js';
import { HAVE_TORCH, PY_DUMP, readDump, runPython } from '../support/torch_ref.js';

// Reference: torchvision backbones with random weights, random lin layers; the LPIPS formula of Zhang et al.
// (scaling layer, slices, unit-normalised channels, squared difference, 1x1 lin, spatial mean, sum).
const SCRIPT = `${PY_DUMP}
import numpy as np, torchvision
out = sys.argv[1]
torch.manual_seed(0)
x = torch.rand(2, 3, 64, 64) * 2 - 1
y = torch.rand(2, 3, 64, 64) * 2 - 1
shift = torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1)
scale = torch.tensor([.458, .448, .450]).view(1, 3, 1, 1)
cuts = {'vgg': [0, 4, 9, 16, 23, 30], 'alex': [0, 2, 5, 8, 10, 12]}
items = [('x', x), ('y', y)]
for net in ['vgg', 'alex']:
    feats = (torchvision.models.vgg16() if net == 'vgg' else torchvision.models.alexnet()).features.eval()
    chns = [m.out_channels for m in feats if isinstance(m, torch.nn.Conv2d)]
    chns = chns if net == 'alex' else [chns[i] for i in (1, 3, 6, 9, 12)]
    lins = [torch.rand(1, c, 1, 1) for c in chns]
    # the torchvision layout (features.N.*); a small classifier entry stands for the unused head
    backbone = {'features.' + k: v for k, v in feats.state_dict().items()}
    backbone['classifier.6.bias'] = torch.zeros(1000)
    torch.save(backbone, f'{out}/{net}_backbone.pth')
    torch.save({f'lin{k}.model.1.weight': w for k, w in enumerate(lins)}, f'{out}/{net}_lin.pth')
    torch.save({f'lin{k}.model.1.weight': w for k, w in enumerate(lins[:-1])}, f'{out}/{net}_lin_short.pth')
    if net == 'vgg':
        sd = {'loss.perceptual_loss.scaling_layer.shift': shift, 'loss.perceptual_loss.scaling_layer.scale': scale}
        c = cuts[net]
        for s in range(5):
            for i in range(c[s], c[s + 1]):
                m = feats[i]
                if isinstance(m, torch.nn.Conv2d):
                    sd[f'loss.perceptual_loss.net.slice{s + 1}.{i}.weight'] = m.weight.detach()
                    sd[f'loss.perceptual_loss.net.slice{s + 1}.{i}.bias'] = m.bias.detach()
        for k, w in enumerate(lins): sd[f'loss.perceptual_loss.lin{k}.model.1.weight'] = w
        sd['encoder.conv_in.weight'] = torch.zeros(1)
        torch.save({'state_dict': sd}, f'{out}/tok.ckpt')
    def slices(t):
        h, res, c = (t - shift) / scale, [], cuts[net]
        for s in range(5):
            for i in range(c[s], c[s + 1]): h = feats[i](h)
            res.append(h)
        return res
    def lpips(a, b):
        val = 0
        for k, (f0, f1) in enumerate(zip(slices(a), slices(b))):
            n0 = f0 / (torch.sqrt(torch.sum(f0 ** 2, dim=1, keepdim=True)) + 1e-10)
            n1 = f1 / (torch.sqrt(torch.sum(f1 ** 2, dim=1, keepdim=True)) + 1e-10)
            val = val + torch.nn.functional.conv2d((n0 - n1) ** 2, lins[k]).mean([2, 3], keepdim=True)
        return val
    with torch.no_grad():
        items.append((f'{net}_d', lpips(x, y)))
logits = torch.randn(40, 1008, dtype=torch.float64) * 3
p = torch.softmax(logits, 1).numpy()
scores = []
for part in np.split(p, 10):
    kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
    scores.append(np.exp(kl.sum(1).mean()))
items += [('logits', logits), ('is', torch.tensor([np.mean(scores), np.std(scores)], dtype=torch.float64))]
dump(named(items), out)
`;

describe.skipIf(!HAVE_TORCH)('LPIPS and Inception Score against PyTorch / numpy references', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-lpips-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let ref = new Map<string, Tensor>();
  beforeAll(async () => {
    await runPython(SCRIPT, [dir], 300_000);
    ref = new Map(
      readDump(dir).map((e) => {
        const buf = e.bytes.slice().buffer;
        const data = e.dtype === 'float64' ? new Float64Array(buf) : new Float32Array(buf);
        return [e.key, tensor(data, e.shape, { dtype: e.dtype as 'float32' | 'float64' })];
      }),
    );
  });
  const get = (k: string): Tensor => ref.get(k)!;
  const values = (t: Tensor) => Array.from(t.dataSync() as Float32Array);

  for (const net of ['vgg', 'alex'] as const) {
    it(`${net}: torchvision backbone + LPIPS lin files match the reference; LPIPS(x, x) = 0`, async () => {
      const m = await LPIPS.fromFiles(net, { backbone: join(dir, `${net}_backbone.pth`), lin: join(dir, `${net}_lin.pth`) });
      const [x, y] = [get('x'), get('y')];
      const d = await m.forward(x, y);
      expect(d.shape).toEqual([2, 1, 1, 1]);
      const want = values(get(`${net}_d`));
      const err = Math.max(...values(d).map((v, i) => Math.abs(v - want[i])));
      console.log(`LPIPS ${net} max abs error ${err} (values ${want.join(', ')})`);
      expect(err).toBeLessThanOrEqual(1e-5);
      expect(values(await m.forward(x, x))).toEqual([0, 0]);
      m.dispose();
    });

    it(`${net}: a lin file lacking a layer is an error naming the key`, async () => {
      await expect(
        LPIPS.fromFiles(net, { backbone: join(dir, `${net}_backbone.pth`), lin: join(dir, `${net}_lin_short.pth`) }),
      ).rejects.toThrow(/lin4\.model\.1\.weight' is missing/);
    });
  }

  it('vgg from a tokenizer checkpoint (loss.perceptual_loss.*) matches; normalize maps [0, 1] inputs', async () => {
    const ckpt = await loadCheckpoint(join(dir, 'tok.ckpt'));
    const m = await LPIPS.fromStateDict(ckpt.stateDict);
    expect(m.net).toBe('vgg');
    const want = values(get('vgg_d'));
    const got = values(await m.forward(get('x'), get('y')));
    expect(Math.max(...got.map((v, i) => Math.abs(v - want[i])))).toBeLessThanOrEqual(1e-5);
    expect([...m.stateDict().keys()]).toContain('lin0.model.1.weight');
    expect([...m.stateDict().keys()]).toContain('net.slice1.0.weight');
    // [0, 1] images with normalize: the same distance as their [-1, 1] versions
    const to01 = (t: Tensor) => tensor((t.dataSync() as Float32Array).map((v) => (v + 1) / 2), t.shape);
    const norm = values(await m.forward(to01(get('x')), to01(get('y')), { normalize: true }));
    expect(Math.max(...norm.map((v, i) => Math.abs(v - want[i])))).toBeLessThanOrEqual(1e-5);
  });

  it('rejects images too small for the backbone', async () => {
    const m = LPIPS.create('alex');
    const small = tensor(new Float32Array(3 * 16 * 16), [1, 3, 16, 16]);
    await expect(m.forward(small, small)).rejects.toThrow(/H, W >= 31/);
  });

  it('Inception Score (10 splits) matches numpy', async () => {
    const is = await inceptionScore(get('logits'));
    const want = get('is').dataSync() as Float64Array;
    expect(Math.abs(is.mean - want[0])).toBeLessThanOrEqual(1e-9);
    expect(Math.abs(is.std - want[1])).toBeLessThanOrEqual(1e-9);
  });
});

describe('codebook usage', () => {
  it('counts indices and reports distinct / n_embed', async () => {
    const idx = tensor([0n, 3n, 3n, 7n, 0n, 3n], [1, 2, 3], { dtype: 'int64' });
    const u = await codebookUsage(idx, 8);
    expect(Array.from(u.histogram)).toEqual([2, 0, 0, 3, 0, 0, 0, 1]);
    expect(u.used).toBe(3);
    expect(u.utilization).toBe(3 / 8);
    await expect(codebookUsage(tensor([8n], [1], { dtype: 'int64' }), 8)).rejects.toThrow(/\[0, 8\)/);
  });
});

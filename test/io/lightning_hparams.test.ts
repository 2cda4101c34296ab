// Lightning checkpoints as Lightning writes them: hyper_parameters pickled as AttributeDict (a dict subclass whose
// module moved between versions: pytorch_lightning.utilities.parsing, lightning.fabric.utilities.data,
// lightning.pytorch.utilities.parsing), nested ones too, are read as dicts, so a non-preset transformer and a
// tokenizer get their configs from them; Transformer.fromCheckpoint reads a flat transformer_config (no
// `params`) and reports what it skipped and the `module.` prefix it removed (loadReport), as Tokenizer does.
// The pickles are written by /usr/bin/python3 with stand-in classes registered under Lightning's module names.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, saveCheckpoint, Tokenizer, Transformer } from '../../dist/index.js';
import { maxAbsDiff } from '../support/compare.js';
import { HAVE_TORCH, runPython } from '../support/torch_ref.js';

// not a preset (B/L/XL/XXL): without a config from the checkpoint, fromCheckpoint cannot build it
const AR = { vocab_size: 64, block_size: 16, n_layer: 2, n_head: 2, n_embd: 32, class_num: 5, multiple_of: 32 };
// resolution and beta are not visible in the weight shapes: only the hyper-parameters tell them
const TOK = {
  ddconfig: { double_z: false, z_channels: 32, resolution: 48, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  n_embed: 32, embed_dim: 8, beta: 0.375,
};

// Stand-in AttributeDict classes under each module path, so pickle records those global names; each variant
// wraps the hyper-parameters differently. argv: AR source ckpt, tokenizer source ckpt, output folder.
const WRITE = `
import sys, types, torch
def attribute_dict(modname):
    parts = modname.split('.')
    for i in range(1, len(parts) + 1):
        name = '.'.join(parts[:i])
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
            if i > 1:
                setattr(sys.modules['.'.join(parts[:i - 1])], parts[i - 1], sys.modules[name])
    def getattr_(self, key):
        try:
            return self[key]
        except KeyError as e:
            raise AttributeError(key) from e
    cls = type('AttributeDict', (dict,), {'__module__': modname, '__getattr__': getattr_,
                                           '__setattr__': lambda self, k, v: self.__setitem__(k, v)})
    setattr(sys.modules[modname], 'AttributeDict', cls)
    return cls
PL = attribute_dict('pytorch_lightning.utilities.parsing')
FABRIC = attribute_dict('lightning.fabric.utilities.data')
LPT = attribute_dict('lightning.pytorch.utilities.parsing')
ar = torch.load(sys.argv[1])
params = dict(ar['hyper_parameters']['params'])
sd = ar['state_dict']
out = sys.argv[3]
# nested AttributeDicts, the official {target, params} form
torch.save({'state_dict': sd, 'hyper_parameters': PL(learning_rate=1e-4, transformer_config=PL(target='src.IBQ.modules.transformer.llama.GPT', params=PL(**params)))}, out + '/pl.ckpt')
# under config (LightningCLI), another module path
torch.save({'state_dict': sd, 'hyper_parameters': FABRIC(config=FABRIC(transformer_config=FABRIC(params=FABRIC(**params))))}, out + '/fabric.ckpt')
# flat transformer_config (no params) and a DDP-wrapped model's keys (module.transformer.*) next to another module's
wrapped = {'module.' + k: v for k, v in sd.items()}
wrapped['module.first_stage_model.quantize.embedding.weight'] = torch.zeros(4, 2)
torch.save({'state_dict': wrapped, 'hyper_parameters': LPT(transformer_config=LPT(**params))}, out + '/flat.ckpt')
tok = torch.load(sys.argv[2])
torch.save({'state_dict': tok['state_dict'], 'hyper_parameters': LPT(**{k: LPT(**v) if isinstance(v, dict) else v for k, v in tok['hyper_parameters'].items()})}, out + '/tok.ckpt')
print(type(torch.load(out + '/pl.ckpt')['hyper_parameters']).__module__)
`;

describe.skipIf(!HAVE_TORCH)("Lightning's AttributeDict hyper-parameters", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-hparams-'));
  let ref: Transformer;
  let tokRef: Tokenizer;
  beforeAll(async () => {
    ref = Transformer.create(AR, { seed: 7 });
    tokRef = Tokenizer.create(TOK, { seed: 7 });
    const prefixed = new Map([...ref.stateDict()].map(([k, v]) => [`transformer.${k}`, v]));
    await saveCheckpoint(join(dir, 'ar-src.ckpt'), { stateDict: prefixed, meta: { hyper_parameters: { params: AR } } });
    await saveCheckpoint(join(dir, 'tok-src.ckpt'), { stateDict: tokRef.stateDict(), meta: { hyper_parameters: TOK } });
    const printed = await runPython(WRITE, [join(dir, 'ar-src.ckpt'), join(dir, 'tok-src.ckpt'), dir]);
    expect(printed.trim()).toBe('pytorch_lightning.utilities.parsing'); // the pickles name Lightning's classes
  }, 120_000);
  afterAll(() => {
    ref.dispose();
    tokRef.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('meta holds them as plain objects (nested ones too)', async () => {
    const ck = await loadCheckpoint(join(dir, 'pl.ckpt'));
    const hp = ck.meta.hyper_parameters as { learning_rate: number; transformer_config: { target: string; params: Record<string, number> } };
    expect(hp.learning_rate).toBe(1e-4);
    expect(hp.transformer_config.target).toBe('src.IBQ.modules.transformer.llama.GPT');
    expect(hp.transformer_config.params).toEqual(expect.objectContaining(AR));
    for (const t of ck.stateDict.values()) t.dispose();
  });

  it.each(['pl', 'fabric', 'flat'])('Transformer.fromCheckpoint(%s.ckpt) builds the non-preset model from them, with its weights', async (name) => {
    const tr = await Transformer.fromCheckpoint(join(dir, `${name}.ckpt`));
    for (const [k, v] of Object.entries(AR)) expect(tr.config[k as keyof typeof AR], k).toBe(v);
    const mine = tr.stateDict();
    let worst = 0;
    for (const [k, v] of ref.stateDict()) worst = Math.max(worst, maxAbsDiff(v, mine.get(k)!));
    expect(worst).toBe(0);
    tr.dispose();
  });

  it('loadReport names the module. prefix removed and the other modules\' keys skipped', async () => {
    const tr = await Transformer.fromCheckpoint(join(dir, 'flat.ckpt'));
    expect(tr.loadReport).toEqual({
      missing: [], unexpected: [], mismatched: [],
      skipped: ['first_stage_model.quantize.embedding.weight'], strippedPrefix: 'module.',
    });
    tr.dispose();
    const plain = await Transformer.fromCheckpoint(join(dir, 'pl.ckpt'));
    expect(plain.loadReport).toEqual({ missing: [], unexpected: [], mismatched: [], skipped: [] });
    plain.dispose();
  });

  it('Tokenizer.fromCheckpoint completes its inferred config from AttributeDict hyper-parameters', async () => {
    const tok = await Tokenizer.fromCheckpoint(join(dir, 'tok.ckpt'));
    expect(tok.config.ddconfig.resolution).toBe(48);
    expect(tok.config.beta).toBe(0.375);
    tok.dispose();
  });
});

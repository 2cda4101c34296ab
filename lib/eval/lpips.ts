/**
 * LPIPS (Zhang et al. 2018; official `lpips` package v0.1 / taming-transformers), VGG16 and AlexNet
 * backbones (native/ibq/eval/lpips.h). State-dict keys are the official ones (`net.slice1.0.weight`,
 * `lin0.model.1.weight`, `scaling_layer.shift`).
 */
import { checkString } from '../core/errors.js';
import { loadCheckpoint } from '../io/index.js';
import { Module, stateDictEntries, type StateDict } from '../core/module.js';
import { native, type LpipsHandleNative } from '../native.js';
import { Tensor, wrap } from '../core/tensor.js';
import { findLpipsFiles, missingLpips, type LpipsNetName } from './weights.js';

function checkNet(net: unknown): LpipsNetName {
  const s = checkString(net, 'net');
  if (s !== 'vgg' && s !== 'alex') throw new RangeError(`net: expected 'vgg' or 'alex', got '${s}'`);
  return s;
}

async function stateDictOf(path: string): Promise<StateDict> {
  return (await loadCheckpoint(path)).stateDict;
}

export class LPIPS extends Module<LpipsHandleNative> {
  /** Random weights (for tests); see the loaders below. */
  static create(net: LpipsNetName = 'vgg'): LPIPS {
    return new LPIPS(new native.LpipsHandle(checkNet(net)));
  }

  /**
   * From a torchvision backbone file (vgg16 / alexnet .pth, `features.N.*`) and an LPIPS lin-layer file
   * (`lin0.model.1.weight` ...). A missing or misshaped key is a RangeError naming it; never random weights.
   */
  static async fromFiles(net: LpipsNetName, files: { backbone: string; lin: string }): Promise<LPIPS> {
    const m = LPIPS.create(net);
    const [bb, lin] = [await stateDictOf(files.backbone), await stateDictOf(files.lin)];
    await m.native.loadTorchvision(stateDictEntries(bb, 'backbone'), stateDictEntries(lin, 'lin'));
    return m;
  }

  /** From the files of weights.ts LPIPS_WEIGHTS in `dir` (or $IBQ_LPIPS_WEIGHTS). MissingWeightsError if absent. */
  static async fromDir(net: LpipsNetName, dir?: string): Promise<LPIPS> {
    const files = findLpipsFiles(checkNet(net), dir);
    if (!files) throw missingLpips(net, dir);
    return LPIPS.fromFiles(net, files);
  }

  /**
   * From official LPIPS keys under `prefix` of a state dict (default 'loss.perceptual_loss.', a tokenizer
   * training checkpoint). The scaling-layer constants may be absent. RangeError listing bad keys.
   */
  static async fromStateDict(sd: StateDict, opts: { net?: LpipsNetName; prefix?: string } = {}): Promise<LPIPS> {
    const prefix = opts.prefix ?? 'loss.perceptual_loss.';
    const m = LPIPS.create(opts.net ?? 'vgg');
    const entries = stateDictEntries(sd).filter(([k]) => k.startsWith(prefix)).map(([k, h]) => [k.slice(prefix.length), h] as [string, typeof h]);
    if (entries.length === 0) throw new RangeError(`stateDict: no keys start with '${prefix}'`);
    await m.native.loadOfficial(entries);
    return m;
  }

  /** 'vgg' or 'alex'. */
  get net(): LpipsNetName {
    return this.native.net();
  }

  /**
   * Distance per image, [B,1,1,1] float32. in0, in1: [B,3,H,W] float in [-1,1] (normalize: in [0,1]); VGG
   * needs H, W >= 16, AlexNet >= 31 (RangeError otherwise). Runs without autograd.
   */
  async forward(in0: Tensor, in1: Tensor, opts: { normalize?: boolean } = {}): Promise<Tensor> {
    if (!(in0 instanceof Tensor)) throw new TypeError('in0: expected a Tensor');
    if (!(in1 instanceof Tensor)) throw new TypeError('in1: expected a Tensor');
    return wrap(await this.native.forward(in0.handle, in1.handle, !!opts.normalize));
  }
}

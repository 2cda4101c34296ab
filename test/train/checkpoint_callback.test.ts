// ModelCheckpoint's rules with a stand-in writer: the latest k without a monitor, all with save_top_k -1, the k best
// by the monitored value with mode max, every_n_train_steps, the state a resumed run reloads.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { ModelCheckpoint } from '../../dist/train/callbacks/checkpoint.js';

const base = { filename: '{epoch}-{step}', mode: 'min' as const, saveTopK: 1, saveLast: false, everyNEpochs: 1, autoInsertMetricName: true };

describe('ModelCheckpoint', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-mc-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const write = async (f: string) => writeFileSync(f, 'x');
  const epochs = async (c: ModelCheckpoint, metrics: number[], key = 'val/psnr') => {
    for (const [e, v] of metrics.entries()) await c.maybeSave({ globalStep: (e + 1) * 10, epoch: e, endsEpoch: true, metrics: { [key]: v } }, write);
  };

  it('without a monitor keeps the latest save_top_k files; -1 keeps all; save_last refreshes last.ckpt', async () => {
    const a = new ModelCheckpoint({ ...base, saveTopK: 2, saveLast: true }, join(root, 'a'));
    await epochs(a, [1, 2, 3]);
    expect(readdirSync(join(root, 'a')).sort()).toEqual(['epoch=1-step=20.ckpt', 'epoch=2-step=30.ckpt', 'last.ckpt']);
    const b = new ModelCheckpoint({ ...base, saveTopK: -1 }, join(root, 'b'));
    await epochs(b, [1, 2, 3]);
    expect(readdirSync(join(root, 'b'))).toHaveLength(3);
  });

  it('mode max keeps the k highest values, names them from the pattern, and reloads its state', async () => {
    const s = { ...base, monitor: 'val/psnr', mode: 'max' as const, saveTopK: 2, filename: 'best-{val/psnr:.1f}' };
    const c = new ModelCheckpoint(s, join(root, 'c'));
    await epochs(c, [20, 25, 22, 21]);
    expect(readdirSync(join(root, 'c')).sort()).toEqual(['best-val_psnr=22.0.ckpt', 'best-val_psnr=25.0.ckpt']);
    expect(c.bestPath).toBe(join(root, 'c', 'best-val_psnr=25.0.ckpt'));
    const again = new ModelCheckpoint(s, join(root, 'c'));
    again.loadState(c.stateDict(), existsSync);
    await again.maybeSave({ globalStep: 50, epoch: 4, endsEpoch: true, metrics: { 'val/psnr': 23 } }, write);
    expect(readdirSync(join(root, 'c')).sort()).toEqual(['best-val_psnr=23.0.ckpt', 'best-val_psnr=25.0.ckpt']);
  });

  it('every_n_train_steps saves on those steps only', async () => {
    const c = new ModelCheckpoint({ ...base, everyNEpochs: undefined, everyNTrainSteps: 4, saveTopK: -1 }, join(root, 'd'));
    for (let g = 1; g <= 9; g++) await c.maybeSave({ globalStep: g, epoch: 0, endsEpoch: g === 9, metrics: {} }, write);
    expect(readdirSync(join(root, 'd')).sort()).toEqual(['epoch=0-step=4.ckpt', 'epoch=0-step=8.ckpt']);
  });
});

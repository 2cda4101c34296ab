// Failures before and during training are errors naming the rank, never hangs: a port in use, an unreachable
// master, and a non-finite loss on one rank (every rank stops with the same error).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { distributedEnv, ProcessGroup, saveNpy } from '../../dist/index.js';
import { rendezvousDeadline } from '../../dist/distributed/process_group.js';
import { fashionImages } from '../support/fashion.js';
import { freePort, runRanks } from './support.js';

describe('process group errors', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-rdzv-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('rank 0 on a port in use: an error naming the port, at once', async () => {
    const port = await freePort();
    const srv: Server = await new Promise((res) => {
      const s = createServer().listen(port, '127.0.0.1', () => res(s));
    });
    try {
      const t0 = Date.now();
      const err = await ProcessGroup.init({ masterAddr: '127.0.0.1', masterPort: port, worldSize: 2, rank: 0, timeoutSeconds: 30 }).catch((e) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe('ERR_IBQ_DISTRIBUTED');
      expect(err.message).toMatch(new RegExp(`rank 0: cannot host the rendezvous at 127.0.0.1:${port}: the port is in use`));
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      srv.close();
    }
  });

  it('a master nobody serves: an error after the timeout naming rank and address', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const err = await ProcessGroup.init({ masterAddr: '127.0.0.1', masterPort: port, worldSize: 2, rank: 1, timeoutSeconds: 2 }).catch((e) => e);
    expect(err.code).toBe('ERR_IBQ_DISTRIBUTED');
    expect(err.message).toMatch(new RegExp(`rank 1: the rendezvous at 127.0.0.1:${port} failed within 2 s`));
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('startedAt: the timeout counts from the launch; a rank that arrives late still waits a share of it', async () => {
    const T = 20, t0 = 1_000_000;
    // arrived 3 s after the launch: the deadline is the launch + T
    expect(rendezvousDeadline(t0, T, t0 + 3000)).toBe(t0 + 20_000);
    // arrived after 18 s: at least max(T / 4, 18 s / 2) = 9 s more, so that ranks as slow as this one still meet
    expect(rendezvousDeadline(t0, T, t0 + 18_000)).toBe(t0 + 27_000);
    // a timeout far shorter than the start-up (2 s, arrival after 8 s): the whole timeout from the arrival
    expect(rendezvousDeadline(t0, 2, t0 + 8000)).toBe(t0 + 10_000);
    // rank 0 of 2, launched 1 s ago with a 2 s timeout, rank 1 never comes: rank 0 gives up 2 s after the launch
    const port = await freePort();
    const launched = Date.now() - 1000;
    const err = await ProcessGroup.init({ masterAddr: '127.0.0.1', masterPort: port, worldSize: 2, rank: 0, timeoutSeconds: 2, startedAt: launched }).catch((e) => e);
    const after = (Date.now() - launched) / 1000;
    expect(err.message).toMatch(/rank 0: rank 1 did not join the rendezvous at 127\.0\.0\.1:\d+ within 2 s \(1 of 2 ranks arrived\)/);
    expect(after).toBeGreaterThanOrEqual(2);
    expect(after).toBeLessThan(2.9); // not 1 + 2 s: the time since the launch counts
    await expect(ProcessGroup.init({ masterAddr: '127.0.0.1', masterPort: port, worldSize: 2, rank: 1, startedAt: -1 })).rejects.toThrow(/startedAt/);
    expect(distributedEnv({ MASTER_ADDR: 'h', MASTER_PORT: '29500', WORLD_SIZE: '2', RANK: '1', IBQ_LAUNCH_TIME_MS: '1700000000000' })).toMatchObject({ startedAt: 1_700_000_000_000 });
    expect(distributedEnv({ MASTER_ADDR: 'h', MASTER_PORT: '29500', WORLD_SIZE: '2', RANK: '1' })!.startedAt).toBe(performance.timeOrigin);
    expect(() => distributedEnv({ MASTER_ADDR: 'h', MASTER_PORT: '29500', WORLD_SIZE: '2', RANK: '1', IBQ_LAUNCH_TIME_MS: 'soon' })).toThrow(/IBQ_LAUNCH_TIME_MS/);
  });

  it('bad options are TypeError/RangeError naming the option', async () => {
    await expect(ProcessGroup.init({ masterAddr: '127.0.0.1', masterPort: 70000, worldSize: 2, rank: 0 })).rejects.toThrow(/masterPort/);
    await expect(ProcessGroup.init({ masterAddr: '127.0.0.1', masterPort: 29500, worldSize: 2, rank: 2 })).rejects.toThrow(RangeError);
  });

  it('a non-finite loss on rank 1 stops both ranks at that step with an error naming rank 1', async () => {
    const images = join(root, 'images.npy');
    await saveNpy(images, await fashionImages('train', 8, 0));
    const config = {
      ddconfig: { double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0 },
      n_embed: 64, embed_dim: 8, learning_rate: 1e-3,
      lossconfig: { disc_start: 0, perceptual_weight: 0, disc_num_layers: 1, disc_ndf: 8 },
    };
    const runs = await runRanks(join(__dirname, 'workers', 'tokenizer_rank.mjs'), { mode: 'nan', images, out: root, config, steps: 2, batch: 2, seed: 1, worldSize: 2 }, 2);
    for (const [r, x] of runs.entries()) {
      expect(x.code, `rank ${r}: ${x.stderr.slice(-1500)}`).toBe(3);
      const e = JSON.parse(readFileSync(join(root, `rank${r}.error.json`), 'utf8'));
      expect(e, JSON.stringify(e)).toMatchObject({ step: 1, name: "TrainingDivergedError", code: "ERR_IBQ_NON_FINITE", ranks: [1] });
      expect(e.message).toMatch(/non-finite discriminator loss at global step 1 on rank 1/);
    }
  }, 120_000);
});

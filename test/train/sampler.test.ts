// DistributedSampler semantics of the shared training loop's data order (lib/train/sampler.ts), and the torchrun
// environment (lib/distributed/env.ts).
import { describe, expect, it } from 'vitest';

import { distributedEnv } from '../../dist/index.js';
import { BatchPlan, epochOrder, samplesPerRank, shardOrder } from '../../dist/train/sampler.js';

describe('data-parallel sharding', () => {
  it('rank r takes positions r, r + W, ... of the shared epoch order; padded by wrapping, or trimmed', () => {
    const order = epochOrder(10, 3, 0);
    const pad = [0, 1, 2].map((rank) => shardOrder(order, { rank, worldSize: 3 }));
    expect(pad.map((p) => p.length)).toEqual([4, 4, 4]);
    expect(pad[1]).toEqual([order[1], order[4], order[7], order[0]]); // position 10 wraps to the first sample
    expect(new Set(pad.flat()).size).toBe(10); // every sample is seen
    const trim = [0, 1, 2].map((rank) => shardOrder(order, { rank, worldSize: 3, trim: true }));
    expect(trim.map((p) => p.length)).toEqual([3, 3, 3]);
    expect(new Set(trim.flat()).size).toBe(9);
    expect(samplesPerRank(10, { rank: 0, worldSize: 4 })).toBe(3);
    expect(samplesPerRank(10, { rank: 0, worldSize: 4, trim: true })).toBe(2);
  });

  it('two ranks with batch b see exactly the samples of one process with batch 2b, step by step', () => {
    const one = new BatchPlan(12, 4, 5, 3);
    const ranks = [0, 1].map((rank) => new BatchPlan(12, 2, 5, 3, { rank, worldSize: 2 }));
    for (let step = 0; step < 6; step++) {
      const joint = [...ranks[0]!.indices(step).indices, ...ranks[1]!.indices(step).indices].sort((a, b) => a - b);
      expect(joint).toEqual([...one.indices(step).indices].sort((a, b) => a - b));
      expect(ranks[0]!.indices(step).epoch).toBe(Math.floor(step / 3));
    }
  });

  it('a position saved with one world size resumes with another at the same sample count', () => {
    const two = new BatchPlan(24, 2, 1, 6, { rank: 0, worldSize: 2 }); // 4 samples per step in all
    const pos = two.position(8); // epoch 1, 2 steps in: 8 samples
    expect(pos).toEqual({ epoch: 1, samples: 8 });
    const one = new BatchPlan(24, 2, 1, 12); // 2 samples per step
    one.resumeAt(8, pos);
    expect(one.epochOf(8)).toBe(1);
    expect(one.position(8)).toEqual(pos);
    expect(one.indices(8).indices).toEqual(epochOrder(24, 1, 1).slice(8, 10));
    expect(one.endsEpoch(8 + 7)).toBe(true); // 12 steps per epoch, 4 were done before the resume
  });
});

describe('torchrun environment', () => {
  const base = { MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500', WORLD_SIZE: '4' };
  it('reads RANK, or NODE_RANK x LOCAL_WORLD_SIZE + LOCAL_RANK', () => {
    expect(distributedEnv({})).toBeUndefined();
    expect(distributedEnv({ WORLD_SIZE: '1' })).toBeUndefined();
    expect(distributedEnv({ ...base, RANK: '2', LOCAL_RANK: '0' })).toMatchObject({ rank: 2, localRank: 0, worldSize: 4, masterPort: 29500, timeoutSeconds: 60 });
    expect(distributedEnv({ ...base, NODE_RANK: '1', LOCAL_WORLD_SIZE: '2', LOCAL_RANK: '1', IBQ_DIST_TIMEOUT: '5' })).toMatchObject({ rank: 3, timeoutSeconds: 5 });
  });
  it('names the variable that is missing or malformed', () => {
    expect(() => distributedEnv({ ...base, MASTER_ADDR: '' , RANK: '0' })).toThrow(/MASTER_ADDR/);
    expect(() => distributedEnv({ ...base, MASTER_PORT: '70000', RANK: '0' })).toThrow(/MASTER_PORT/);
    expect(() => distributedEnv({ ...base, RANK: '4' })).toThrow(/RANK: expected an integer in \[0, 3\]/);
    expect(() => distributedEnv({ ...base })).toThrow(/RANK: expected the global rank/);
    expect(() => distributedEnv({ ...base, RANK: '1', IBQ_DIST_TIMEOUT: '0' })).toThrow(/IBQ_DIST_TIMEOUT/);
  });
});

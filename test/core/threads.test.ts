import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { info, setNumThreads } from '../../dist/index.js';
import { rankThreads } from '../../dist/cli/launch.js';
import { native } from '../../dist/native.js';
import {
  decideThreads, launchThreads, parseCpuList, parseCpuQuota, readAffinity, readCgroupCpus,
} from '../../dist/core/threads.js';
import { run } from '../support/run.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'ibq.js');

describe('thread decision (pure)', () => {
  it('takes the affinity mask when nothing else limits', () => {
    expect(decideThreads({ affinity: 8 })).toMatchObject({ threads: 8, source: 'affinity' });
    expect(decideThreads({ affinity: 8, cgroupCpus: 16 })).toMatchObject({ threads: 8, source: 'affinity' });
  });
  it('a cgroup quota below the affinity caps it, rounded down, at least one', () => {
    expect(decideThreads({ affinity: 8, cgroupCpus: 2 })).toMatchObject({ threads: 2, source: 'cgroup' });
    const d = decideThreads({ affinity: 4, cgroupCpus: 1.5 });
    expect(d).toMatchObject({ threads: 1, source: 'cgroup' });
    expect(d.reason).toContain('1.5 CPUs');
    expect(decideThreads({ affinity: 4, cgroupCpus: 0.25 })).toMatchObject({ threads: 1, source: 'cgroup' });
  });
  it('OMP_NUM_THREADS wins over the CPU count; a malformed value is ignored', () => {
    expect(decideThreads({ affinity: 8, ompNumThreads: '3' })).toMatchObject({ threads: 3, source: 'env' });
    expect(decideThreads({ affinity: 8, ompNumThreads: '6,2' })).toMatchObject({ threads: 6, source: 'env' });
    expect(decideThreads({ affinity: 8, ompNumThreads: 'lots' })).toMatchObject({ threads: 8, source: 'affinity' });
    expect(decideThreads({ affinity: 8, ompNumThreads: '0' })).toMatchObject({ threads: 8, source: 'affinity' });
  });
  it('divides the available CPUs among local processes (launch or LOCAL_WORLD_SIZE)', () => {
    expect(decideThreads({ affinity: 8, launchThreads: '2', localWorldSize: '4', ompNumThreads: '2' }))
      .toMatchObject({ threads: 2, source: 'launch' });
    expect(decideThreads({ affinity: 16, cgroupCpus: 6, localWorldSize: '4' })).toMatchObject({ threads: 1, source: 'launch' });
    expect(decideThreads({ affinity: 16, localWorldSize: '4' })).toMatchObject({ threads: 4, source: 'launch' });
    expect(decideThreads({ affinity: 2, localWorldSize: '4' })).toMatchObject({ threads: 1, source: 'launch' });
    expect(decideThreads({ affinity: 8, localWorldSize: '1' })).toMatchObject({ threads: 8, source: 'affinity' });
    expect(launchThreads({ affinity: 16, cgroupCpus: 8 }, 3)).toBe(2);
    expect(launchThreads({ affinity: 2 }, 4)).toBe(1);
  });
  it('the user wins over everything', () => {
    expect(decideThreads({ affinity: 8, cgroupCpus: 1, ompNumThreads: '4', launchThreads: '2', user: 5 }))
      .toMatchObject({ threads: 5, source: 'user' });
  });
  it('`ibq launch` leaves a user-set OMP_NUM_THREADS alone and otherwise sets both variables alike', () => {
    expect(rankThreads(2, { OMP_NUM_THREADS: '3' })).toEqual({});
    const r = rankThreads(1, {});
    expect(r.OMP_NUM_THREADS).toBe(r.IBQ_LAUNCH_THREADS);
    expect(Number(r.OMP_NUM_THREADS)).toBe(launchThreads({ affinity: readAffinity(), cgroupCpus: readCgroupCpus() }, 1));
  });
});

describe('reading the limits', () => {
  it('CPU lists and quotas', () => {
    expect(parseCpuList('0-3,8,10-11')).toBe(7);
    expect(parseCpuList('5')).toBe(1);
    expect(parseCpuList('3-1')).toBeUndefined();
    expect(parseCpuList('x')).toBeUndefined();
    expect(parseCpuQuota('200000 100000')).toBe(2);
    expect(parseCpuQuota('max 100000')).toBeUndefined();
    expect(parseCpuQuota('150000', '100000')).toBe(1.5);
    expect(parseCpuQuota('-1', '100000')).toBeUndefined();
    expect(readAffinity('Name:\tnode\nCpus_allowed_list:\t0-1,4-5\n')).toBe(4);
  });
  it('cgroup v2: the tightest quota from the process cgroup up to the root', () => {
    const files: Record<string, string> = {
      '/sys/fs/cgroup/a/cpu.max': '400000 100000\n',
      '/sys/fs/cgroup/a/b/cpu.max': 'max 100000\n',
      '/sys/fs/cgroup/a/b/c/cpu.max': '300000 100000\n',
    };
    expect(readCgroupCpus('0::/a/b/c\n', (p) => files[p])).toBe(3);
    files['/sys/fs/cgroup/a/cpu.max'] = '50000 100000';
    expect(readCgroupCpus('0::/a/b/c\n', (p) => files[p])).toBe(0.5);
    expect(readCgroupCpus('0::/\n', () => undefined)).toBeUndefined();
  });
  it('cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us of the cpu controller', () => {
    const files: Record<string, string> = {
      '/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us': '250000',
      '/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us': '100000',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '-1',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000',
    };
    expect(readCgroupCpus('12:memory:/job\n4:cpu,cpuacct:/job\n', (p) => files[p])).toBe(2.5);
    expect(readCgroupCpus('12:memory:/job\n', (p) => files[p])).toBeUndefined();
  });
});

describe('threads in this process', () => {
  it('setNumThreads reaches the jobs; the BLAS runs on the job thread only and gets its setting back after', async () => {
    const before = info();
    const blasBefore = native.testOps.blasThreads();
    try {
      setNumThreads(1);
      expect(info()).toMatchObject({ threads: 1, threadsSource: 'user' });
      expect((await native.testOps.threads()).intraOp).toBe(1);
      setNumThreads(2);
      const t = await native.testOps.threads();
      expect(t.intraOp).toBe(2);
      if (before.blasOneThread) {
        expect(t.blas).toBe(1);
        // the worker gives it back right after the job's result is posted
        for (let i = 0; i < 100 && native.testOps.blasThreads() !== blasBefore; i++) await new Promise((r) => setTimeout(r, 10));
        expect(native.testOps.blasThreads()).toBe(blasBefore);
      }
      // a default never replaces a choice
      expect(native.setNumThreads(3, 'affinity', 'test')).toBe(false);
      expect(info().threads).toBe(2);
    } finally {
      setNumThreads(before.threads);
    }
  });

  it('--threads on a command reaches the native side; without it the default names its source', async () => {
    const env = { ...process.env };
    delete env.OMP_NUM_THREADS;
    delete env.LOCAL_WORLD_SIZE;
    delete env.IBQ_LAUNCH_THREADS;
    const json = async (args: string[], extra: NodeJS.ProcessEnv = {}) => {
      const r = await run(process.execPath, [BIN, ...args], { env: { ...env, ...extra } });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    expect(await json(['info', '--json', '--threads', '3'])).toMatchObject({ threads: 3, threadsSource: 'user' });
    expect(await json(['--threads', '1', 'info', '--json'], { OMP_NUM_THREADS: '2' })).toMatchObject({ threads: 1, threadsSource: 'user' });
    expect(await json(['info', '--json'], { OMP_NUM_THREADS: '2' })).toMatchObject({ threads: 2, threadsSource: 'env' });
    expect(await json(['info', '--json'], { IBQ_LAUNCH_THREADS: '1', LOCAL_WORLD_SIZE: '2' })).toMatchObject({ threads: 1, threadsSource: 'launch' });
    const d = await json(['info', '--json']);
    expect(['affinity', 'cgroup']).toContain(d.threadsSource);
    expect(d.threads).toBe(decideThreads({ affinity: readAffinity(), cgroupCpus: readCgroupCpus() }).threads);
    const bad = await run(process.execPath, [BIN, 'info', '--threads', '0'], { env });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--threads: expected an integer in \[1, 1024\]/);
  });
});

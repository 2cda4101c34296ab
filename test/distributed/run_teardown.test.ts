// The training run owns its process group (lib/train/run.ts): a group joined from the torchrun environment is
// destroyed when the run ends, and the returned model is detached from it. Two ranks on loopback train; then rank 0
// binds MASTER_PORT itself (possible only when the group's rendezvous store is gone) and steps its model alone (a
// model still attached would wait for rank 1 forever).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { ROOT, runRanks } from './support.js';

const PARAMS = {
  vocab_size: 32, block_size: 4, n_layer: 1, n_head: 2, n_embd: 16, class_num: 2, multiple_of: 16,
  resid_dropout_p: 0, ffn_dropout_p: 0, attn_dropout_p: 0, token_drop: 0, drop_path_rate: 0, class_dropout_prob: 0,
};

describe('training run teardown', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-run-teardown-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('destroys the process group it joined and detaches the model', async () => {
    const rs = await runRanks(join(ROOT, 'test/distributed/workers/ar_run_rank.mjs'), { out: dir, params: PARAMS }, 2, { IBQ_DIST_TIMEOUT: '30' });
    rs.forEach((r, i) => expect(r.code, `rank ${i}: ${r.stderr.slice(-2000)}`).toBe(0));
    const out = [0, 1].map((r) => JSON.parse(readFileSync(join(dir, `rank${r}.json`), 'utf8')) as { globalStep: number; portFree: boolean | null; alone: number | null });
    expect(out.map((o) => o.globalStep)).toEqual([2, 2]);
    expect(out[0]!.portFree).toBe(true);
    expect(Number.isFinite(out[0]!.alone)).toBe(true);
  }, 300_000);
});

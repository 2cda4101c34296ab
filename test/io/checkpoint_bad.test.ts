// Bad input: every malformed file is an Error naming the file and the problem; nothing crashes, hangs,
// or allocates more than the file holds.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, loadSafetensors } from '../../dist/index.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';
import { cat, glob, int, P, str, tensorPickle, writeTorchZip } from '../support/pickles.js';
import { HAVE_TORCH, runPython } from '../support/torch_ref.js';

const tmp = mkdtempSync(join(tmpdir(), 'ibq-bad-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const file = (data: Buffer) => {
  const p = join(tmp, `case${n++}.ckpt`);
  writeFileSync(p, data);
  return p;
};
const zipCase = async (pkl: Buffer, records: Record<string, Buffer> = {}, version?: string) => {
  const p = join(tmp, `zip${n++}.ckpt`);
  await writeTorchZip(p, pkl, records, version);
  return p;
};
/** Expects an Error (any subclass) whose message names the file and matches `re`. */
async function expectError(path: string, re: RegExp) {
  const err = await loadCheckpoint(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${path} should fail`).toBeInstanceOf(Error);
  expect((err as Error).message).toContain(path);
  expect((err as Error).message).toMatch(re);
}
const f32 = (k: number) => Buffer.from(Float32Array.from({ length: k }, (_, i) => i).buffer);

describe('loadCheckpoint rejects bad input with an Error naming the file', () => {
  it('a well-formed hand-made archive loads (the harness itself is right)', async () => {
    const ck = await loadCheckpoint(await zipCase(tensorPickle(6, [2, 3], [3, 1]), { '0': f32(6) }));
    expect(Array.from(ck.stateDict.get('w')!.dataSync())).toEqual([0, 1, 2, 3, 4, 5]);
    const t = await loadCheckpoint(await zipCase(tensorPickle(6, [3, 2], [1, 3], 0), { '0': f32(6) }));
    expect(Array.from(t.stateDict.get('w')!.dataSync())).toEqual([0, 3, 1, 4, 2, 5]);
  });

  it('missing, empty, random and plain-pickle files', async () => {
    await expectError(join(tmp, 'nope.ckpt'), /ENOENT|no such file/);
    await expectError(file(Buffer.alloc(0)), /empty/);
    await expectError(file(Buffer.from('hello world, not a checkpoint')), /not a torch checkpoint/);
    await expectError(file(cat(P.proto, int(5), P.stop)), /not a torch\.save file/);
    await expectError(file(Buffer.from([0x50, 0x4b, 0x03, 0x04, 1, 2, 3])), /zip/);
  });

  it.skipIf(!HAVE_FIXTURES)('a truncated zip checkpoint', async () => {
    const full = readFileSync(fixture('gpt', 'model.ckpt'));
    for (const len of [10, 5000, full.length >> 1, full.length - 30]) await expectError(file(full.subarray(0, len)), /zip|truncat|central|record|corrupt/i);
  });

  it.skipIf(!HAVE_TORCH)('a truncated legacy checkpoint', async () => {
    const p = join(tmp, 'legacy.pt');
    await runPython(`import sys, torch; torch.save({'a': torch.arange(1000.), 'b': torch.ones(3)}, sys.argv[1], _use_new_zipfile_serialization=False)`, [p]);
    const full = readFileSync(p);
    expect((await loadCheckpoint(p)).stateDict.size).toBe(2);
    for (const len of [3, 40, 200, full.length - 100, full.length - 1]) await expectError(file(full.subarray(0, len)), /truncat|more than the file|malformed/);
  });

  it('a missing record, a record or storage smaller than its tensor needs', async () => {
    await expectError(await zipCase(tensorPickle(6, [6], [1])), /no record 'archive\/data\/0'/);
    await expectError(await zipCase(tensorPickle(6, [6], [1]), { '0': f32(3) }), /holds 12 bytes, but its storage needs 24/);
    await expectError(await zipCase(tensorPickle(6, [10], [1]), { '0': f32(6) }), /needs a storage of at least 10 elements, but it holds 6/);
    await expectError(await zipCase(tensorPickle(6, [2, 3], [3, 1], 1), { '0': f32(6) }), /at least 7 elements/);
    await expectError(await zipCase(tensorPickle(6, [6], [1]), { '0': f32(6) }, ''), /version|record/);
  });

  it('absurd sizes never turn into allocations', async () => {
    await expectError(await zipCase(tensorPickle(2n ** 50n, [4], [1]), { '0': f32(4) }), /claims 1125899906842624 elements/);
    await expectError(await zipCase(tensorPickle(4, [2 ** 40, 2 ** 40], [1, 1]), { '0': f32(4) }), /more than 2\^48 elements/);
    await expectError(await zipCase(tensorPickle(4, [1000, 1000], [1, 1]), { '0': f32(4) }), /needs a storage of at least 1999 elements/);
    await expectError(await zipCase(cat(P.proto, Buffer.from([0x58, 0xff, 0xff, 0xff, 0xff]), P.stop)), /truncated pickle/);
    await expectError(await zipCase(cat(P.proto, Buffer.from([0x8d]), Buffer.alloc(8, 0xff), P.stop)), /exceeds the data size/);
  });

  it('unknown opcodes, deep nesting, bad memo indices, stack underflow', async () => {
    await expectError(await zipCase(cat(P.proto, [0xff], P.stop)), /unknown opcode 0xff/);
    await expectError(await zipCase(cat(P.proto, Buffer.alloc(1001, 0x28), P.stop)), /nesting deeper than 1000/);
    // lists nested 5000 deep without MARKs: caught when the value is converted
    await expectError(await zipCase(cat(P.proto, Buffer.alloc(5000, 0x5d), Buffer.alloc(4999, 0x61), P.stop)), /nesting deeper than 1000/);
    await expectError(await zipCase(cat(P.proto, [0x6a, 0xff, 0xff, 0xff, 0xff], P.stop)), /memo key 4294967295 is not defined/);
    await expectError(await zipCase(cat(P.proto, [0x61], P.stop)), /stack underflow/);
    await expectError(await zipCase(cat(P.proto, P.none, P.none, P.stop)), /STOP with 2 values/);
    await expectError(await zipCase(cat(P.proto, [0x82, 1], P.stop)), /EXT1/);
    // a persistent id that is not a storage
    await expectError(await zipCase(cat(P.proto, str('x'), P.binpersid, P.stop)), /persistent id/);
    // a tensor rebuilt from something that is not a storage
    await expectError(await zipCase(cat(P.proto, glob('torch._utils', '_rebuild_tensor_v2'), P.mark, int(1), int(0), P.emptyTuple, P.emptyTuple, P.tuple, P.reduce, P.stop)), /not a persistent storage/);
  });

  it('a huge LONG_BINPUT memo index is legal and allocates nothing', async () => {
    const ck = await loadCheckpoint(await zipCase(cat(P.proto, P.emptyDict, [0x72, 0xfe, 0xff, 0xff, 0xff], str('a'), [0x6a, 0xfe, 0xff, 0xff, 0xff], P.setitem, P.stop)));
    expect(ck.stateDict.size).toBe(0);
    expect(ck.meta.a).toBe(ck.meta); // the dict contains itself
  });
});

describe('loadSafetensors rejects bad input', () => {
  const st = (header: unknown, data = Buffer.alloc(0), lenOverride?: bigint) => {
    const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
    const p = join(tmp, `st${n++}.safetensors`);
    writeFileSync(p, Buffer.concat([len, h, data]));
    return p;
  };
  const bad = async (p: string, re: RegExp) => {
    const err = await loadSafetensors(p).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(p);
    expect((err as Error).message).toMatch(re);
  };
  it('bad headers, lengths, dtypes and offsets', async () => {
    await bad(st({}, Buffer.alloc(0), 2n ** 60n), /header length/);
    await bad(st('{not json'), /not valid JSON/);
    await bad(st('[1]'), /not a JSON object/);
    await bad(st({ w: { dtype: 'I16', shape: [1], data_offsets: [0, 2] } }, Buffer.alloc(2)), /'w'.*I16.*not supported/);
    await bad(st({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, Buffer.alloc(8)), /'w'.*needs 8/);
    await bad(st({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, Buffer.alloc(4)), /'w'.*shape/);
    await bad(st({ w: { dtype: 'F32', shape: [2 ** 40], data_offsets: [0, 2 ** 42] } }, Buffer.alloc(4)), /'w'.*outside/);
    const ok = await loadSafetensors(st({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(2)));
    expect(Array.from(ok.get('w')!.dataSync())).toEqual([0, 1]);
  });
});

import { describe, expect, it } from 'vitest';

import { DTYPES, info, tensor, Tensor, type DType } from '../../dist/index.js';

describe('info()', () => {
  it('reports the libtorch the addon runs on', () => {
    const i = info();
    expect(i.libtorch).toMatch(/^\d+\.\d+\.\d+$/);
    expect(typeof i.cuda).toBe('boolean');
    expect(i.cudaDevices).toBe(i.cuda ? i.cudaDevices : 0);
    expect(i.threads).toBeGreaterThanOrEqual(1);
  });
});

describe('tensor round trips', () => {
  const cases: [DType, ArrayBufferView, unknown[]][] = [
    ['float32', new Float32Array([1.5, -2.25, 3e-8, 1e30, -0, 7]), [1.5, -2.25, Math.fround(3e-8), Math.fround(1e30), -0, 7]],
    ['float64', new Float64Array([Math.PI, -1e300, 5e-324, 0, 1, 2]), [Math.PI, -1e300, 5e-324, 0, 1, 2]],
    ['int64', new BigInt64Array([9007199254740993n, -9223372036854775808n, 0n, 1n, -1n, 42n]),
      [9007199254740993n, -9223372036854775808n, 0n, 1n, -1n, 42n]],
    ['int32', new Int32Array([2147483647, -2147483648, 0, 1, -1, 5]), [2147483647, -2147483648, 0, 1, -1, 5]],
    ['int8', new Int8Array([127, -128, 0, 1, -1, 5]), [127, -128, 0, 1, -1, 5]],
    ['uint8', new Uint8Array([255, 0, 1, 2, 128, 5]), [255, 0, 1, 2, 128, 5]],
    ['bool', new Uint8Array([1, 0, 1, 1, 0, 0]), [1, 0, 1, 1, 0, 0]],
  ];
  for (const [dtype, data, expected] of cases) {
    it(`${dtype}: values, shape and dtype survive`, async () => {
      const t = tensor(data as never, [2, 3], { dtype });
      expect(t.shape).toEqual([2, 3]);
      expect(t.dtype).toBe(dtype);
      expect(t.device).toBe('cpu');
      const sync = t.dataSync();
      const asyncData = await t.data();
      expect(Array.from(sync as never)).toEqual(expected);
      expect(Array.from(asyncData as never)).toEqual(expected);
      expect(sync.constructor).toBe(dtype === 'bool' ? Uint8Array : data.constructor);
    });
  }

  it('covers every dtype of the table', () => {
    expect([...DTYPES].sort()).toEqual(
      ['bfloat16', 'bool', 'float16', 'float32', 'float64', 'int32', 'int64', 'int8', 'uint8'],
    );
  });

  for (const dtype of ['float16', 'bfloat16'] as const) {
    it(`${dtype}: converted from Float32Array and number[], and raw bits both ways`, async () => {
      // exactly representable values in both formats
      const vals = [1, -2, 0.5, 240, -0.125, 3];
      const a = tensor(new Float32Array(vals), [3, 2], { dtype });
      const b = tensor(vals, [3, 2], { dtype });
      expect(Array.from(a.dataSync())).toEqual(vals);
      expect(Array.from(await b.data())).toEqual(vals);
      const bits = a.dataSync({ raw: true });
      expect(bits).toBeInstanceOf(Uint16Array);
      // 1.0: 0x3C00 in float16, 0x3F80 in bfloat16
      expect(bits[0]).toBe(dtype === 'float16' ? 0x3c00 : 0x3f80);
      const c = tensor(bits as Uint16Array, [3, 2], { dtype, raw: true });
      expect(Array.from(c.dataSync())).toEqual(vals);
      expect(Array.from((await c.data({ raw: true })) as Uint16Array)).toEqual(Array.from(bits));
      // rounding follows torch: 1 + 2^-11 rounds to 1 in float16 (ties to even)
      if (dtype === 'float16') expect(tensor([1 + 2 ** -11], [1], { dtype }).dataSync()[0]).toBe(1);
    });
  }

  it('number[] and bigint[] infer and convert', () => {
    expect(tensor([1n, 2n], [2]).dtype).toBe('int64');
    expect(tensor([1, 2], [2]).dtype).toBe('float32');
    expect(tensor([true, false], [2]).dtype).toBe('bool');
    expect(Array.from(tensor([3, 4], [2], { dtype: 'int64' }).dataSync() as BigInt64Array)).toEqual([3n, 4n]);
  });

  it('0-d and empty tensors', () => {
    const s = tensor([2.5], []);
    expect(s.shape).toEqual([]);
    expect(Array.from(s.dataSync())).toEqual([2.5]);
    const e = tensor(new Float32Array(0), [0, 3]);
    expect(e.shape).toEqual([0, 3]);
    expect(e.dataSync().length).toBe(0);
  });

  it('dispose frees once and is idempotent; Symbol.dispose works', () => {
    const t = tensor([1, 2], [2]);
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    {
      using u = tensor([1], [1]);
      expect(u.disposed).toBe(false);
    }
  });
});

describe('bad input', () => {
  it('shape/length mismatch is a RangeError naming data', () => {
    expect(() => tensor(new Float32Array(5), [2, 3])).toThrow(RangeError);
    expect(() => tensor(new Float32Array(5), [2, 3])).toThrow(/data: shape \[2, 3\] needs 6 elements, got 5/);
  });
  it('negative or non-integer dims are RangeErrors naming shape[i]', () => {
    expect(() => tensor(new Float32Array(2), [-2])).toThrow(/shape\[0\].*integer/);
    expect(() => tensor(new Float32Array(2), [-2])).toThrow(RangeError);
    expect(() => tensor(new Float32Array(2), [1.5, 2])).toThrow(RangeError);
    expect(() => tensor(new Float32Array(2), 'two' as never)).toThrow(TypeError);
    expect(() => tensor(new Float32Array(2), 'two' as never)).toThrow(/shape: expected an array/);
  });
  it('unknown dtype is a RangeError listing the dtypes', () => {
    expect(() => tensor([1], [1], { dtype: 'complex64' as never })).toThrow(RangeError);
    expect(() => tensor([1], [1], { dtype: 'complex64' as never })).toThrow(/dtype: unknown dtype "complex64".*float32/);
  });
  it('a typed array of the wrong kind is a TypeError naming both', () => {
    expect(() => tensor(new Float64Array(2), [2], { dtype: 'float32' })).toThrow(TypeError);
    expect(() => tensor(new Float64Array(2), [2], { dtype: 'float32' })).toThrow(/expects a Float32Array, got a Float64Array/);
    expect(() => tensor(new Int32Array(2), [2], { dtype: 'int64' })).toThrow(/BigInt64Array/);
  });
  it('wrong argument types are TypeErrors', () => {
    expect(() => tensor('abc' as never, [3])).toThrow(TypeError);
    expect(() => tensor([1, 'x'] as never, [2])).toThrow(/data\[1\]/);
    expect(() => tensor([1.5], [1], { dtype: 'int64' })).toThrow(/data\[0\].*int64/);
    expect(() => tensor([300], [1], { dtype: 'uint8' })).toThrow(RangeError);
    expect(() => tensor([1], [1], { device: 'tpu' })).toThrow(/device: expected 'cpu', 'cuda' or 'cuda:N'/);
    expect(() => new (Tensor as never as new (x: unknown) => Tensor)({})).toThrow(TypeError);
  });
  it('data() returns a copy: writing to it changes neither the tensor nor a later data()', async () => {
    const t = tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
    const a = (await t.data()) as Float32Array;
    a[0] = 99;
    expect(Array.from((await t.data()) as Float32Array)).toEqual([1, 2, 3, 4]);
    expect(Array.from(t.dataSync() as Float32Array)).toEqual([1, 2, 3, 4]);
    // the array outlives the tensor
    t.dispose();
    expect(Array.from(a)).toEqual([99, 2, 3, 4]);
  });

  it('a disposed tensor used again is a TypeError', async () => {
    const t = tensor([1, 2], [2]);
    t.dispose();
    expect(() => t.shape).toThrow(TypeError);
    expect(() => t.dataSync()).toThrow(/disposed/);
    expect(() => t.data()).toThrow(/disposed/);
    expect(() => t.to('cpu')).toThrow(/disposed/);
  });
  it('raw is only for 16-bit floats', () => {
    expect(() => tensor([1], [1]).dataSync({ raw: true })).toThrow(TypeError);
    expect(() => tensor(new Uint16Array(1), [1], { dtype: 'float32', raw: true })).toThrow(TypeError);
  });
});

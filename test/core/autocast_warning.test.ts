import { describe, expect, it } from 'vitest';

import { info } from '../../dist/index.js';
import { checkAutocastDType, warnEmulatedBf16 } from '../../dist/core/autocast.js';

describe('bfloat16 autocast on a CPU without native bfloat16', () => {
  it('info() says whether the CPU has it', () => {
    expect(typeof info().nativeBf16).toBe('boolean');
  });

  it('one warning per process, only where the CPU emulates bfloat16, never for CUDA', async () => {
    const warnings: Error[] = [];
    const listener = (w: Error) => warnings.push(w);
    process.on('warning', listener);
    try {
      checkAutocastDType('bfloat16', 'autocast', 'cuda:0');
      expect(warnEmulatedBf16(true)).toBe(false);
      // this CPU: warns once when it lacks native bfloat16
      checkAutocastDType('bfloat16', 'autocast', 'cpu');
      const here = info().nativeBf16 ? 0 : 1;
      // a CPU without it (forced): the warning, once
      const forced = warnEmulatedBf16(false);
      expect(forced).toBe(here === 0);
      expect(warnEmulatedBf16(false)).toBe(false);
      checkAutocastDType('bfloat16', 'autocast', 'cpu');
      await new Promise((r) => setImmediate(r));
      const ours = warnings.filter((w) => (w as { code?: string }).code === 'IBQ_BF16_EMULATED');
      expect(ours).toHaveLength(1);
      expect(ours[0]!.message).toMatch(/without native bfloat16.*slower than float32/);
    } finally {
      process.removeListener('warning', listener);
    }
  });
});

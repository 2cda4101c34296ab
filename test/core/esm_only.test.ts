// The package is ESM only: require() gets a clear error with a stable code, and the README says so up front.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { describe, expect, it } from 'vitest';

describe('ESM only', () => {
  it("require('ibq-native') throws ERR_IBQ_ESM_ONLY naming the import forms", () => {
    const require = createRequire(import.meta.url);
    let err: (Error & { code?: string }) | undefined;
    try {
      require('ibq-native');
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).toBe('ERR_IBQ_ESM_ONLY');
    expect(err?.message).toMatch(/ES module/);
    expect(err?.message).toContain("import { Tokenizer } from 'ibq-native'");
    expect(err?.message).toContain("await import('ibq-native')");
  });

  it("the README's first lines say ESM only with the import form", () => {
    const head = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').split('\n').slice(0, 12).join('\n');
    expect(head).toMatch(/ESM only/);
    expect(head).toMatch(/import \{[^}]+\} from 'ibq-native'/);
  });
});

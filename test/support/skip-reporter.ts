/**
 * Fails the run when the fixtures are present and a test was skipped anyway (CI has them: nothing that needs
 * them may be skipped). When they are absent, prints why the fixture tests were skipped.
 */
import type { Reporter, TestModule } from 'vitest/node';

import { HAVE_FIXTURES, NO_FIXTURES_REASON } from './fixtures';

export default class SkipReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const skipped: string[] = [];
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        if (t.result().state === 'skipped') skipped.push(`${m.moduleId}: ${t.fullName}`);
      }
    }
    if (skipped.length === 0) return;
    if (HAVE_FIXTURES) {
      console.error(`\n${skipped.length} test(s) were skipped although the fixtures are present:\n  ${skipped.join('\n  ')}`);
      process.exitCode = 1;
    } else {
      console.warn(`\n${skipped.length} test(s) skipped: ${NO_FIXTURES_REASON}`);
    }
  }
}

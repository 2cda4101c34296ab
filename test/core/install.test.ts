// Installing as a dependency (the full check, pack + install + encode, is scripts/ci-pack-test.sh in CI):
// the pieces an installed package relies on.
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { rebuildAdvice } from '../../dist/native.js';

const root = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8'));

describe('install as a dependency', () => {
  it('the "not built" / libtorch mismatch advice of an installed package is npm rebuild there (after approving its script)', () => {
    const advice = rebuildAdvice('/srv/app/node_modules/ibq-native');
    expect(advice).toContain('`npm rebuild ibq-native` in /srv/app');
    expect(advice).toContain('npm install-scripts approve ibq-native');
    expect(advice).not.toContain('npm run build');
    expect(rebuildAdvice(root)).toContain(`\`npm run build\` (or \`bash scripts/setup\`) in ${root}`);
  });

  it('the install script can build with cmake-js: a dependency, resolved wherever npm puts it', () => {
    expect(pkg.dependencies['cmake-js']).toBeDefined();
    expect(pkg.devDependencies?.['cmake-js']).toBeUndefined();
    const build = readFileSync(`${root}/scripts/build-native.js`, 'utf8');
    expect(build).toMatch(/resolve\('cmake-js\/package\.json'\)/);
    expect(readFileSync(`${root}/scripts/install.js`, 'utf8')).toMatch(/build-native\.js/);
    for (const f of ['CMakeLists.txt', 'scripts', 'native', 'dist']) expect(pkg.files).toContain(f);
  });

  it('node-gyp links libtorch after the objects ("libraries", not "ldflags": undefined symbol _ZTIN5torch2nn6ModuleE)', () => {
    const gyp = JSON.parse(readFileSync(`${root}/binding.gyp`, 'utf8'));
    const target = gyp.targets[0];
    expect(target.ldflags ?? []).not.toContainEqual(expect.stringContaining('torch-flags.cjs libs'));
    expect(target.libraries).toContainEqual(expect.stringContaining('torch-flags.cjs libs'));
  });
});

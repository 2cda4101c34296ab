/** Where the golden fixtures live (../shared/fixtures, or $IBQ_FIXTURES), and whether they are present. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const FIXTURES = resolve(process.env.IBQ_FIXTURES ?? join(__dirname, '..', '..', '..', 'shared', 'fixtures'));
export const HAVE_FIXTURES = existsSync(FIXTURES);
export const NO_FIXTURES_REASON = `fixtures folder ${FIXTURES} is absent (set IBQ_FIXTURES)`;

export function fixture(...parts: string[]): string {
  return join(FIXTURES, ...parts);
}

/**
 * Flag values as numbers, for every command: the checks (RangeError naming the flag) and commander argument
 * parsers built on them. Options with a numeric default take the parser and the number, so that `--help` prints
 * `(default: 0)` for every command alike.
 */

/** A whole number in [min, max] from a flag value; undefined when the flag was not given. */
export function intFlag(v: string | undefined, flag: string, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new RangeError(`${flag}: expected an integer ${range}, got '${v}'`);
  }
  return n;
}

/** A finite number >= min from a flag value; undefined when the flag was not given. */
export function numberFlag(v: string | undefined, flag: string, min = -Infinity): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min) {
    throw new RangeError(`${flag}: expected a number${min === -Infinity ? '' : ` >= ${min}`}, got '${v}'`);
  }
  return n;
}

/** Commander parser of a whole-number flag (see intFlag). */
export function intArg(flag: string, min = 1, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v) => intFlag(v, flag, min, max)!;
}

/** Commander parser of a number flag (see numberFlag). */
export function numberArg(flag: string, min = -Infinity): (v: string) => number {
  return (v) => numberFlag(v, flag, min)!;
}

#!/usr/bin/env node
// The `ibq` command line: a thin shell over lib/cli (commander).
import { main } from '../dist/cli/index.js';

main(process.argv).catch((err) => {
  console.error(`ibq: ${err?.message ?? err}`);
  process.exitCode = process.exitCode || 1;
  // a failed data-parallel run may leave native threads waiting on peers that are gone: never hang on exit
  setTimeout(() => process.exit(), 5000).unref();
});

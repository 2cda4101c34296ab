#!/usr/bin/env node
// The `ibq` command line: a thin shell over lib/cli (commander).
import { main } from '../dist/cli/index.js';

main(process.argv).catch((err) => {
  console.error(`ibq: ${err?.message ?? err}`);
  process.exitCode = process.exitCode || 1;
});

#!/usr/bin/env node
// The `ibq` command line: a thin shell over lib/cli (commander).

// `ibq serve` shares the cores with request handling: libgomp's threads sleep between parallel regions (PASSIVE)
// rather than spinning, unless the user chose a policy. libgomp reads it once, when libtorch loads: set it first.
if (process.argv[2] === 'serve' && process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'PASSIVE';

const { main } = await import('../dist/cli/index.js');

main(process.argv).catch((err) => {
  console.error(`ibq: ${err?.message ?? err}`);
  process.exitCode = process.exitCode || 1;
  // a failed data-parallel run may leave native threads waiting on peers that are gone: never hang on exit
  setTimeout(() => process.exit(), 5000).unref();
});

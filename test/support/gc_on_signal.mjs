// Preloaded (node --expose-gc --import) into a server process by tests that measure its resident memory: on
// SIGUSR2 it runs a full garbage collection, so that JavaScript garbage (request and response buffers V8 has not
// collected yet; up to tens of MB between collections) does not count as growth.
process.on('SIGUSR2', () => globalThis.gc());

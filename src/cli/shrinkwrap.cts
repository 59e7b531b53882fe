#!/usr/bin/env node
// The `shrinkwrap` command. A CommonJS file on purpose: it runs before Node loads any ES module,
// and loading ES modules starts libuv's thread pool, whose size is read from the environment once,
// at that start. The data writers read files ahead on that pool (sources/read-ahead.ts): 4 threads
// (the default) leave a cold disk waiting; more than a few per core fight the compressors for the
// cores (500,000-entry tree, cold cache, 2 cores: 8 threads 35.3 s, 16 threads 39.0 s).
// The user's own UV_THREADPOOL_SIZE wins.
import os = require('node:os');

process.env['UV_THREADPOOL_SIZE'] ??= String(Math.min(32, 4 * Math.max(2, os.availableParallelism())));
// A reader that goes away (`shrinkwrap --help | head`, `plan | less` quit early) is not an error:
// stop quietly, as other command-line tools do, instead of dying on an unhandled EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    // Other failures (a full disk under stdout) are the writer's to report, in one line (util/out.ts).
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
}
// main.ts runs nothing when imported (tests import it); the command runs here.
void import('./main.js').then(async ({ main }) => {
  process.exitCode = await main(process.argv.slice(2));
});

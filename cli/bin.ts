#!/usr/bin/env node
import { main } from './main';

let done = false;
// If the event loop ever empties while a command still waits, that is a bug;
// exiting 0 then would report success for work that never finished.
process.on('beforeExit', () => {
  if (!done) {
    process.stderr.write('octask: internal error: stopped waiting with work unfinished\n');
    process.exit(125);
  }
});

main(process.argv.slice(2)).then(
  (code) => {
    done = true;
    // Let stdout drain before leaving (it may be a pipe).
    process.exitCode = code;
    if (process.stdout.writableLength === 0) process.exit(code);
    process.stdout.once('drain', () => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`octask: ${String(err)}\n`);
    process.exit(125);
  },
);

#!/usr/bin/env node
import { runAgentCli } from './main';

runAgentCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`octask-agent: ${String(err)}\n`);
    process.exit(1);
  },
);

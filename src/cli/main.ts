#!/usr/bin/env node
import { runCli } from './run';

// The CLI's entry point: the only module that reads process.argv and process.env.
// exitCode rather than exit(): stdout may be a pipe still being written.
runCli(
  process.argv.slice(2),
  {
    address: process.env.TOKENBROKER_ADDRESS,
    devDir: process.env.TOKENBROKER_DEV_DIR,
    idToken: process.env.TOKENBROKER_ID_TOKEN,
    cwd: process.cwd(),
  },
  { stdout: process.stdout, stderr: process.stderr },
).then((code) => {
  process.exitCode = code;
});

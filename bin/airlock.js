#!/usr/bin/env node
// The one `airlock` binary: loads the compiled CLI (run `npm run build` first).
const fail = (err) => {
  process.stderr.write(`airlock: ${err?.message ?? err}\n`);
  process.exit(1);
};

// `airlock agent run` starts inside every task environment, so it skips the CLI framework and
// loads only the agent runtime (about a third of the start-up time).
if (process.argv[2] === 'agent' && process.argv[3] === 'run' && process.argv.length === 4) {
  const { runAgent } = await import('../dist/agent/run.js');
  runAgent({ env: process.env }).then((code) => {
    process.exitCode = code;
  }, fail);
} else {
  const { main } = await import('../dist/cli/main.js');
  main(process.argv).catch(fail);
}

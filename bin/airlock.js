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
} else if (process.argv[2] === 'agent' && process.argv[3] === 'git-credential' && process.argv.length <= 5) {
  // git runs this for every credential the agent's clone or push needs: keep it as light.
  const { runCredentialHelper } = await import('../dist/agent/workspace/credential-helper.js');
  runCredentialHelper({
    action: process.argv[4],
    env: process.env,
    stdin: process.stdin,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  }).then((code) => {
    process.exitCode = code;
  }, fail);
} else {
  const { main } = await import('../dist/cli/main.js');
  main(process.argv).catch(fail);
}

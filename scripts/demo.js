#!/usr/bin/env node
// The offline demo (`npm run demo`): the built-in coding agent fixes a real bug in a small sample
// repository, end to end, on this machine, with no network and no model account.
//
// What runs, all as separate processes driven through the `airlock` CLI like a user would:
//   1. the scripted model server — a TEST DOUBLE that replays examples/demo/model-script.yaml
//      over the OpenAI wire API (it is not a model; a real provider goes in its place in production);
//   2. `airlock server` on SQLite in a temporary directory, and two API keys from `airlock admin`;
//   3. `airlock worker` on the direct backend (or `--backend docker`: one hardened container per
//      task, from a local image with Node and npm), whose YAML config routes model calls straight
//      to the scripted server (BYOLLM: they never pass through the control plane);
//   4. `airlock task create --harness builtin --repo <sample repo> --push --wait`.
// Then it checks out the task's result branch in the sample repository and runs its tests.
//
// Exit status: 0 only if the sample repository's failing test passes on the result branch.
// Set AIRLOCK_DEMO_KEEP=1 to keep the temporary directory for a look around.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, linkSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const airlockBin = path.join(root, 'bin', 'airlock.js');
const exampleDir = path.join(root, 'examples', 'demo');

const work = mkdtempSync(path.join(tmpdir(), 'airlock-demo-'));
const children = [];

/** `npm run demo -- --backend docker` runs the tasks in containers instead of host processes. */
const backendArg = process.argv.indexOf('--backend');
const backend = backendArg === -1 ? 'direct' : process.argv[backendArg + 1];
if (backend !== 'direct' && backend !== 'docker') {
  process.stderr.write(`demo: --backend must be direct or docker, not ${backend}\n`);
  process.exit(2);
}
/** The docker demo's image: the test image (Debian, git) plus this machine's Node and npm, built locally. */
const DEMO_IMAGE = 'airlock-demo/node:bookworm';

function step(text) {
  process.stdout.write(`\n\x1b[1m▸ ${text}\x1b[0m\n`);
}

function git(cwd, ...args) {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** A free loopback port (bound, read, released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Start a long-running child; its output goes to a log file in the work directory. */
function background(name, args, env = {}) {
  const log = path.join(work, `${name}.log`);
  const child = spawn(process.execPath, [airlockBin, ...args], {
    cwd: work,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks = [];
  child.stdout.on('data', (d) => chunks.push(d));
  child.stderr.on('data', (d) => chunks.push(d));
  child.on('exit', () => writeFileSync(log, Buffer.concat(chunks)));
  child.output = () => Buffer.concat(chunks).toString();
  children.push(child);
  return child;
}

/** Run the CLI to completion, streaming its output to ours; resolves to its exit code. */
function cli(args, env, { capture = false } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [airlockBin, ...args], {
      cwd: work,
      env: { ...process.env, ...env },
      // Captured commands are plumbing (keys, ids): their hints on stderr would only distract.
      stdio: ['ignore', capture ? 'pipe' : 'inherit', capture ? 'ignore' : 'inherit'],
    });
    let out = '';
    if (capture) child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve(capture ? { code, out } : code));
  });
}

async function waitFor(what, check, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The image docker tasks run in: the sample's tests need Node and npm, and no registry is
 * reachable, so it is built here FROM the locally built test image with this machine's own Node
 * binary and npm (rebuilt when the Node version changes).
 */
function ensureDemoImage() {
  const wanted = process.version;
  let have = '';
  try {
    have = execFileSync('docker', ['image', 'inspect', '--format', '{{ index .Config.Labels "dev.airlock.demo.node" }}', DEMO_IMAGE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    /* not built yet */
  }
  if (have === wanted) return;
  step(`Building the demo image ${DEMO_IMAGE} (the test image plus Node ${wanted} and npm)`);
  execFileSync('bash', [path.join(root, 'scripts', 'test-image.sh')], { stdio: 'inherit' });
  const context = path.join(work, 'image');
  cpSync(path.dirname(path.dirname(realpathSync(path.join(path.dirname(process.execPath), 'npm')))), path.join(context, 'npm'), { recursive: true });
  try {
    linkSync(process.execPath, path.join(context, 'node'));
  } catch {
    cpSync(process.execPath, path.join(context, 'node'));
  }
  writeFileSync(
    path.join(context, 'Dockerfile'),
    [
      'FROM airlock-test/debian:bookworm',
      'COPY node /usr/local/bin/node',
      'COPY npm /usr/local/lib/node_modules/npm',
      'RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && node --version && npm --version',
      `LABEL dev.airlock.demo.node=${wanted}`,
      '',
    ].join('\n'),
  );
  execFileSync('docker', ['build', '--quiet', '--tag', DEMO_IMAGE, context], { stdio: ['ignore', 'inherit', 'inherit'] });
  rmSync(context, { recursive: true, force: true });
}

async function main() {
  if (backend === 'docker') ensureDemoImage();
  step(`Preparing the sample repository (a tiny invoice library whose total is wrong) in ${work}/invoice`);
  const repo = path.join(work, 'invoice');
  cpSync(path.join(exampleDir, 'repo'), repo, { recursive: true });
  git(repo, 'init', '--quiet', '--initial-branch=main');
  git(repo, '-c', 'user.name=Demo', '-c', 'user.email=demo@example.invalid', 'add', '-A');
  git(repo, '-c', 'user.name=Demo', '-c', 'user.email=demo@example.invalid', 'commit', '--quiet', '-m', 'Invoice library');
  const before = spawnTest(repo);
  process.stdout.write(`  npm test on main: ${before.ok ? 'passes (unexpected!)' : 'fails, as expected'}\n`);

  step('Starting the scripted model server (a test double that replays examples/demo/model-script.yaml)');
  const modelPort = await freePort();
  const model = background('model-server', ['dev', 'model-server', '--port', String(modelPort), '--script', path.join(exampleDir, 'model-script.yaml')]);
  const modelUrl = `http://127.0.0.1:${modelPort}`;
  await waitFor('the scripted model server', () => model.output().includes(String(modelPort)));

  step('Starting the control plane (airlock server, SQLite) and minting keys');
  const dataDir = path.join(work, 'server');
  const port = await freePort();
  const server = `http://127.0.0.1:${port}`;
  await cli(['admin', 'create-team', 'demo', '--data-dir', dataDir], {}, { capture: true });
  const userKey = JSON.parse((await cli(['admin', 'create-api-key', '--team', 'demo', '--role', 'admin', '--json', '--data-dir', dataDir], {}, { capture: true })).out).key;
  const workerKey = JSON.parse((await cli(['admin', 'create-api-key', '--team', 'demo', '--role', 'worker', '--json', '--data-dir', dataDir], {}, { capture: true })).out).key;
  background('server', ['server', '--data-dir', dataDir, '--port', String(port)]);
  await waitFor('the server', async () => fetch(`${server}/readyz`).then((r) => r.ok, () => false));

  step(`Starting a worker (${backend} backend) whose model calls go straight to the scripted server (BYOLLM)`);
  const workerConfig = path.join(work, 'worker.yaml');
  writeFileSync(
    workerConfig,
    [
      `server: ${server}`,
      'worker_id: demo-worker',
      `backend: ${backend}`,
      // Docker: the sample repository is mounted at the same path, so the task clones and pushes it as on the host.
      ...(backend === 'docker' ? ['docker:', `  default_image: ${DEMO_IMAGE}`, '  volumes:', `    - ${work}:${work}`] : []),
      `state_dir: ${path.join(work, 'worker-state')}`,
      `workspace_root: ${path.join(work, 'ws')}`,
      'models:',
      '  default: demo',
      '  providers:',
      '    demo:',
      '      type: openai-compatible',
      `      base_url: ${modelUrl}/v1`,
      '      api_key_env: DEMO_MODEL_KEY',
      '      model: scripted-demo',
      '',
    ].join('\n'),
  );
  background('worker', ['worker', '--config', workerConfig], { AIRLOCK_API_KEY: workerKey, DEMO_MODEL_KEY: 'not-a-real-key' });
  const env = { AIRLOCK_SERVER: server, AIRLOCK_API_KEY: userKey };
  await waitFor('the worker to connect', async () => {
    const { out } = await cli(['worker', 'list', '--json'], env, { capture: true });
    return out.includes('demo-worker');
  });

  step('Asking the built-in agent to fix it');
  const prompt = 'The invoice tests fail: total() gives the wrong amount when there is a discount. Find the bug, fix it, and make sure `npm test` passes.';
  process.stdout.write(`  airlock task create --harness builtin --repo ${repo} --push --wait "${prompt}"\n\n`);
  const created = await cli(['task', 'create', '--harness', 'builtin', '--repo', repo, '--push', '--max-turns', '20', '--title', 'Fix the invoice total', prompt], env, { capture: true });
  const id = created.out.trim();
  if (created.code !== 0 || !id.startsWith('tsk_')) throw new Error(`could not create the task (exit code ${created.code})`);
  await cli(['task', 'logs', '--follow', id], env);
  await cli(['task', 'show', id], env);
  const task = JSON.parse((await cli(['task', 'show', id, '--json'], env, { capture: true })).out);
  if (task.state !== 'succeeded') throw new Error(`the task ended ${task.state}: ${task.message ?? ''}`);

  step(`Checking out ${task.artifacts?.branch} in the sample repository and running its tests`);
  const branch = task.artifacts?.branch;
  if (!branch) throw new Error('the task reported no result branch');
  git(repo, 'checkout', '--quiet', branch);
  process.stdout.write(`${git(repo, 'log', '--oneline', '-3')}\n`);
  const after = spawnTest(repo);
  process.stdout.write(after.output.split('\n').filter((l) => /^# (tests|pass|fail)/.test(l)).join('\n') + '\n');
  if (!after.ok) throw new Error(`npm test still fails on ${branch}`);
  step(`Done: the failing test passes on ${branch}.`);
}

function spawnTest(cwd) {
  try {
    const output = execFileSync(process.execPath, ['--test', 'test/'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { ok: true, output };
  } catch (err) {
    return { ok: false, output: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

let status = 0;
try {
  await main();
} catch (err) {
  status = 1;
  process.stderr.write(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}\n(logs in ${work})\n`);
} finally {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.filter((c) => c.exitCode === null).map((c) => new Promise((r) => c.once('exit', r))));
  if (status === 0 && !process.env.AIRLOCK_DEMO_KEEP) rmSync(work, { recursive: true, force: true });
}
process.exit(status);

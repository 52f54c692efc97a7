/**
 * The README's five-minute tour, run as written against a real `airlock up`, so the README
 * cannot rot. The blocks under "A five-minute tour" run in bash with `set -e`, from a fresh
 * directory where `airlock up` keeps its state (the PATH line is replaced by the test's own).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, eventually, requireBuild, tempDir } from '../support/stack.js';

function tourBlock(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('## A five-minute tour');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const blocks = [...section.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!);
  if (blocks.length === 0) throw new Error('README has no bash block under "A five-minute tour"');
  return blocks.join('\n');
}

describe('README', () => {
  const dir = tempDir('readme');
  let up: ReturnType<typeof spawn>;
  let output = '';

  beforeAll(async () => {
    requireBuild();
    up = spawn(process.execPath, [CLI, 'up', '--port', '0'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout!.on('data', (d) => (output += d));
    up.stderr!.on('data', (d) => (output += d));
    await eventually(() => output.includes('Ctrl-C stops both'), 20_000, `airlock up to start; output: ${output}`);
  });

  afterAll(async () => {
    if (up.exitCode !== null || up.signalCode !== null) return;
    up.kill('SIGKILL');
    await new Promise((r) => up.on('exit', r));
  });

  it('`airlock up` prints the URL and a ready-to-use API key', () => {
    expect(output).toMatch(/server\s+http:\/\/127\.0\.0\.1:\d+/);
    expect(output).toMatch(/API key\s+alk_[a-z2-7]{20}_[A-Za-z0-9]{32}/);
  });

  it('the five-minute tour runs as written', () => {
    const script = tourBlock()
      .split('\n')
      .filter((line) => !line.startsWith('export PATH='))
      .join('\n');
    const result = spawnSync('bash', ['-euo', 'pipefail', '-c', script], {
      cwd: dir,
      env: { PATH: `${join(ROOT, 'bin')}:${process.env.PATH}`, HOME: dir },
      encoding: 'utf8',
      timeout: 60_000,
      // stdin must not be a socket (Node's default pipes are socketpairs): bash would then think
      // it runs under sshd and read /etc/bash.bashrc.
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(result.status, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain('hello from');
    expect(result.stdout).toMatch(/3\.\.\.\n2\.\.\.\n1\.\.\.\nliftoff/);
    expect(result.stdout).toContain('exit code 1');
    expect(result.stdout).toMatch(/local\s+connected/);
    expect(result.stdout).toContain('"tasks"'); // the curl of GET /api/v1/tasks
    expect(result.stdout).toContain('event: end'); // the curl of the SSE stream
  });

  it('Ctrl-C stops the server and the worker cleanly', async () => {
    up.kill('SIGINT');
    const code = await new Promise((r) => up.on('exit', r));
    expect(code).toBe(0);
  });
});

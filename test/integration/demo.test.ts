/**
 * The README's offline demo, as a user runs it (`npm run demo` after the build, and
 * `npm run demo -- --backend docker`): the built-in
 * agent fixes the sample repository's bug through a real server, worker and task gateway, with
 * the scripted model server (a TEST DOUBLE) in place of a provider. The script exits 0 only if the
 * sample's failing test passes on the task's result branch.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

describe('npm run demo', () => {
  it.each([
    ['direct', []],
    ['docker', ['--backend', 'docker']],
  ])('fixes the sample bug end to end on the %s backend and exits 0', async (_backend, args) => {
    const child = spawn(process.execPath, [path.join(root, 'scripts/demo.js'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, output).toBe(0);
    expect(output).toMatch(/› \$ npm test/); // the agent's tool calls are shown as it works
    expect(output).toMatch(/# pass 4/);
    expect(output).toMatch(/# fail 0/);
    expect(output).toMatch(/Done: the failing test passes on airlock\/[a-z2-7]{8}/);
  }, 180_000);
});

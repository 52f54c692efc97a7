// Loaded before every test file (vitest setupFiles). Keeps tests honest about the environment
// they run in, and proves each file cleans up: a file that leaves a child process running (a
// worker, a server, a CLI it spawned) fails, naming the leftover.
import { readFile } from 'node:fs/promises';
import { afterAll } from 'vitest';
import { isLive, listPids, readProcStat } from '../../src/lib/procfs.js';

delete process.env.AIRLOCK_API_KEY;
delete process.env.AIRLOCK_SERVER;

/** Children get this long to finish exiting after the file's own cleanup ran. */
const EXIT_GRACE_MS = 3000;

/** Tooling that runs beside the tests by design (esbuild's long-lived transform service). */
const INFRASTRUCTURE = /\/esbuild --service/;

async function commandOf(pid: number): Promise<string> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '?');
  return raw.replace(/\0/g, ' ').trim();
}

async function liveChildren(): Promise<number[]> {
  const children: number[] = [];
  for (const pid of await listPids()) {
    const stat = await readProcStat(pid);
    if (isLive(stat) && stat.ppid === process.pid && !INFRASTRUCTURE.test(await commandOf(pid))) children.push(pid);
  }
  return children;
}

afterAll(async () => {
  const deadline = Date.now() + EXIT_GRACE_MS;
  let children = await liveChildren();
  while (children.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    children = await liveChildren();
  }
  if (children.length > 0) {
    const commands = await Promise.all(children.map(async (pid) => `${pid}: ${(await commandOf(pid)).slice(0, 120)}`));
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
    throw new Error(`this test file left ${children.length} child process(es) running (now killed):\n${commands.join('\n')}`);
  }
});

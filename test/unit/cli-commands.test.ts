/**
 * The real `airlock` binary against a real API in the test process: the admin commands bootstrap
 * a data directory (and keep working while the server runs on it), then the task and worker
 * commands talk to the server — output, --json, exit codes of --wait, following logs, and
 * errors that carry the server's words.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskView } from '../../src/protocol/task.js';
import type { ExecutionRecord } from '../../src/server/store/store.js';
import { ensureBuilt, runCli, startCli } from '../support/http-cli.js';
import { appendEvents, finishExecution, startExecution, startTestApi, type TestApi } from '../support/http-context.js';
import { eventually } from '../support/http-sse.js';

let dir: string;
let home: string;
let api: TestApi;
let teamId: string;
let memberKey: string;
let env: Record<string, string>;

beforeAll(async () => {
  await ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'airlock-cli-'));
  home = mkdtempSync(join(tmpdir(), 'airlock-cli-home-'));
}, 240_000);

afterAll(async () => {
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

const dataDir = () => join(dir, 'data');
/** Each CLI run is a whole Node process loading the whole program: allow for a loaded machine. */
const CLI_TEST_TIMEOUT = { timeout: 90_000 };

describe('airlock admin', CLI_TEST_TIMEOUT, () => {
  it('bootstraps a data directory: create-team and create-api-key --json', async () => {
    const team = await runCli(['admin', 'create-team', 'acme', '--data-dir', dataDir(), '--json']);
    expect(team.stderr).toBe('');
    expect(team.code).toBe(0);
    const teamJson = JSON.parse(team.stdout);
    expect(teamJson).toMatchObject({ id: expect.stringMatching(/^team_/), name: 'acme' });
    teamId = teamJson.id;

    const key = await runCli(['admin', 'create-api-key', '--team', 'acme', '--role', 'member', '--name', 'ci', '--data-dir', dataDir(), '--json']);
    expect(key.code).toBe(0);
    const keyJson = JSON.parse(key.stdout);
    expect(Object.keys(keyJson).sort()).toEqual(['id', 'key', 'role', 'team']);
    expect(keyJson).toMatchObject({ team: 'acme', role: 'member' });
    expect(keyJson.key).toMatch(/^alk_[a-z2-7]{20}_[A-Za-z0-9]{32}$/);
    expect(keyJson.id).toBe(`key_${keyJson.key.slice(4, 24)}`);
    memberKey = keyJson.key;

    // The server starts on the same directory: same database, same secret.
    api = await startTestApi({ dir: dataDir() });
    env = { HOME: home, AIRLOCK_SERVER: api.url, AIRLOCK_API_KEY: memberKey };
  });

  it('mints keys while the server runs, and they work at once', async () => {
    const key = await runCli(['admin', 'create-api-key', '--team', 'acme', '--role', 'admin', '--data-dir', dataDir()]);
    expect(key.code, key.stderr).toBe(0);
    expect(key.stdout.trim()).toMatch(/^alk_[a-z2-7]{20}_[A-Za-z0-9]{32}$/);
    expect(key.stderr).toMatch(/not shown again/);
    const list = await runCli(['task', 'list', '--json'], { env: { ...env, AIRLOCK_API_KEY: key.stdout.trim() } });
    expect(list.code).toBe(0);
  });

  it('lists keys without ever showing them, and revokes them', async () => {
    const minted = JSON.parse((await runCli(['admin', 'create-api-key', '--team', 'acme', '--role', 'worker', '--data-dir', dataDir(), '--json'])).stdout);
    const list = await runCli(['admin', 'list-api-keys', '--team', 'acme', '--data-dir', dataDir(), '--json']);
    expect(list.code).toBe(0);
    const keys = JSON.parse(list.stdout);
    expect(keys.map((k: { id: string }) => k.id)).toContain(minted.id);
    expect(list.stdout).not.toContain(minted.key.slice(25));
    expect(list.stdout).not.toContain('alk_');
    const table = await runCli(['admin', 'list-api-keys', '--team', 'acme', '--data-dir', dataDir()]);
    expect(table.stdout).toMatch(/^ID\s+ROLE\s+NAME\s+CREATED\s+REVOKED$/m);

    const revoke = await runCli(['admin', 'revoke-api-key', minted.id, '--team', 'acme', '--data-dir', dataDir()]);
    expect(revoke).toMatchObject({ code: 0, stdout: `revoked ${minted.id}\n` });
    const after = JSON.parse((await runCli(['admin', 'list-api-keys', '--team', 'acme', '--data-dir', dataDir(), '--json'])).stdout);
    expect(after.find((k: { id: string }) => k.id === minted.id).revoked_at).not.toBeNull();
    expect(await api.ctx.authenticate(minted.key)).toBeUndefined();
    const audit = await api.store.listAudit(teamId, 50);
    expect(audit.filter((e) => e.actor === 'admin-cli').map((e) => e.action)).toEqual(expect.arrayContaining(['team.create', 'api_key.create', 'api_key.revoke']));
  });

  it('validates flags with errors that name the flag and the fix', async () => {
    // Independent refusals: run them at once (each is a whole process start).
    const [role, name, noDir, wrongDir, noTeam, dup, key] = await Promise.all([
      runCli(['admin', 'create-api-key', '--team', 'acme', '--role', 'root', '--data-dir', dataDir()]),
      runCli(['admin', 'create-team', 'Not_Valid', '--data-dir', dataDir()]),
      runCli(['admin', 'list-api-keys', '--team', 'acme']),
      runCli(['admin', 'list-api-keys', '--team', 'acme', '--data-dir', join(dir, 'typo')]),
      runCli(['admin', 'create-api-key', '--team', 'nobody', '--role', 'member', '--data-dir', dataDir()]),
      runCli(['admin', 'create-team', 'acme', '--data-dir', dataDir()]),
      runCli(['admin', 'revoke-api-key', memberKey, '--team', 'acme', '--data-dir', dataDir()]),
    ]);
    expect(role.code).not.toBe(0);
    expect(role.stderr).toMatch(/--role <role>' argument 'root' is invalid. Allowed choices are admin, member, worker/);
    expect(name.code).not.toBe(0);
    expect(name.stderr).toMatch(/lowercase letters, digits and "-"/);
    // without --data-dir: the server's default (./.airlock/server), which does not exist in the test's directory
    expect(noDir.stderr).toMatch(/no Airlock database at .*\.airlock\/server\/airlock\.db/);
    expect(wrongDir).toMatchObject({ code: 1 });
    expect(wrongDir.stderr).toMatch(/no Airlock database at .*typo\/airlock\.db — pass the --data-dir the server uses/);
    expect(noTeam.stderr).toMatch(/no team named "nobody" — .*create-team nobody/);
    expect(dup.stderr).toMatch(/already exists/);
    expect(key.stderr).toMatch(/that is an API key, not a key id/);
    expect(key.stderr).not.toContain(memberKey);
  });
});

describe('airlock task', CLI_TEST_TIMEOUT, () => {
  it('creates a task from an argument, a file and stdin', async () => {
    const fromArg = await runCli(['task', 'create', 'echo from-arg', '--title', 'arg'], { env });
    expect(fromArg.code).toBe(0);
    expect(fromArg.stdout).toMatch(/^tsk_[a-z2-7]{20}\n$/);
    expect(fromArg.stderr).toMatch(/airlock task logs tsk_\w+ -f/);

    const file = join(dir, 'prompt.sh');
    writeFileSync(file, 'echo from-file\n');
    const fromFile = await runCli(['task', 'create', '--file', file, '--json', '--timeout', '5m', '--worker-id', 'w1'], { env });
    expect(fromFile.code).toBe(0);
    expect(TaskView.parse(JSON.parse(fromFile.stdout))).toMatchObject({ prompt: 'echo from-file\n', timeout_seconds: 300, worker_id: 'w1', state: 'queued' });

    const fromStdin = await runCli(['task', 'create', '-', '--json'], { env, input: 'echo from-stdin' });
    expect(JSON.parse(fromStdin.stdout).prompt).toBe('echo from-stdin');
  });

  it('refuses bad input before calling the server, naming the flag', async () => {
    const [none, both, timeout, worker, limit, state, big, id] = await Promise.all([
      runCli(['task', 'create'], { env }),
      runCli(['task', 'create', 'x', '--file', 'y'], { env }),
      runCli(['task', 'create', 'x', '--timeout', '1.5'], { env }),
      runCli(['task', 'create', 'x', '--worker-id', '../up'], { env }),
      runCli(['task', 'list', '--limit', '500'], { env }),
      runCli(['task', 'list', '--state', 'done'], { env }),
      runCli(['task', 'create', '-'], { env, input: 'x'.repeat(300 * 1024) }),
      runCli(['task', 'show', 'nope'], { env }),
    ]);
    expect(none).toMatchObject({ code: 1 });
    expect(none.stderr).toMatch(/no prompt — give it as an argument .*--file FILE.*"-" to read stdin/);
    expect(both.stderr).toMatch(/give the prompt once/);
    expect(timeout.stderr).toMatch(/--timeout must be whole seconds/);
    expect(worker.stderr).toMatch(/--worker-id/);
    expect(limit.stderr).toMatch(/--limit must be a whole number from 1 to 200/);
    expect(state.stderr).toMatch(/Allowed choices are queued, assigned, running, succeeded, failed, cancelled/);
    expect(big.stderr).toMatch(/over the limit of 256 KiB/);
    expect(id.stderr).toMatch(/"nope" is not a task id/);
  });

  it('lists (table, --json, --all across pages) and shows tasks', async () => {
    for (let i = 0; i < 3; i++) await runCli(['task', 'create', `echo ${i}`, '--title', `page-${i}`], { env }); // in order: newest first below
    const table = await runCli(['task', 'list'], { env });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+STATE\s+HARNESS\s+WORKER\s+CREATED\s+TITLE$/m);
    expect(table.stdout).toMatch(/page-2/);

    const [allRun, pagedRun, onePage] = await Promise.all([
      runCli(['task', 'list', '--json'], { env }),
      runCli(['task', 'list', '--limit', '2', '--all', '--json'], { env }),
      runCli(['task', 'list', '--limit', '2'], { env }),
    ]);
    const all = JSON.parse(allRun.stdout);
    const paged = JSON.parse(pagedRun.stdout);
    expect(paged.tasks.map((t: TaskView) => t.id)).toEqual(all.tasks.map((t: TaskView) => t.id));
    expect(paged.next_cursor).toBeNull();
    expect(onePage.stderr).toMatch(/more tasks/);

    const id = all.tasks[0].id as string;
    const show = await runCli(['task', 'show', id], { env });
    expect(show.stdout).toMatch(new RegExp(`^id:\\s+${id}$`, 'm'));
    expect(show.stdout).toMatch(/^state:\s+queued$/m);
    const json = JSON.parse((await runCli(['task', 'show', id, '--json'], { env })).stdout);
    expect(TaskView.parse(json).id).toBe(id);
  });

  it('prints the transcript (logs, logs --json) and follows it (logs -f) until the task ends', async () => {
    const id = (await runCli(['task', 'create', 'echo'], { env })).stdout.trim();
    const execution = await startExecution(api, teamId, id);
    await appendEvents(api, execution, [
      { seq: 1, data: { stream: 'stdout', text: 'out one\n' } },
      { seq: 2, data: { stream: 'stderr', text: 'err one\n' } },
      { seq: 3, kind: 'status', data: { text: '$ npm test' } },
      { seq: 4, kind: 'lifecycle', data: { phase: 'finished' } },
    ]);
    const logs = await runCli(['task', 'logs', id], { env });
    // Output to its own stream, untouched; agent progress to stderr, marked; lifecycle not at all.
    expect(logs).toMatchObject({ code: 0, stdout: 'out one\n', stderr: 'err one\n› $ npm test\n' });
    const json = JSON.parse((await runCli(['task', 'logs', id, '--json'], { env })).stdout);
    expect(json.map((e: { id: string }) => e.id)).toEqual(['1.1', '1.2', '1.3', '1.4']);

    const follower = startCli(['task', 'logs', id, '-f'], { env });
    await eventually(() => follower.stdout().includes('out one'), 10_000, 'the backlog');
    await eventually(() => api.hub.followerCount >= 1);
    await appendEvents(api, execution, [{ seq: 5, data: { stream: 'stdout', text: 'live two\n' } }]);
    await eventually(() => follower.stdout().includes('live two'), 10_000, 'the live event');
    await finishExecution(api, execution, 'succeeded');
    const done = await follower.done;
    expect(done.code).toBe(0);
    expect(done.stdout).toBe('out one\nlive two\n');
  });

  async function waitForTask(title: string): Promise<{ id: string; execution: ExecutionRecord }> {
    let id: string | undefined;
    await eventually(
      async () => {
        const page = await api.store.listTasks(teamId, { limit: 50 });
        id = page.tasks.find((t) => t.title === title)?.id;
        return id !== undefined;
      },
      10_000,
      `task ${title}`,
    );
    return { id: id!, execution: await startExecution(api, teamId, id!) };
  }

  it('create --wait exits 0 when the task succeeds, printing its output', async () => {
    const run = startCli(['task', 'create', 'echo ok', '--title', 'wait-ok', '--wait'], { env });
    const { execution } = await waitForTask('wait-ok');
    await eventually(() => api.hub.followerCount >= 1, 10_000, 'the CLI to follow');
    await appendEvents(api, execution, [{ seq: 1, data: { stream: 'stdout', text: 'ok\n' } }]);
    await finishExecution(api, execution, 'succeeded');
    const result = await run.done;
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('ok\n');
    expect(result.stderr).toMatch(/succeeded/);
  });

  it('create --wait exits 1 when the task fails, printing the reason and message', async () => {
    const run = startCli(['task', 'create', 'exit 3', '--title', 'wait-fail', '--wait'], { env });
    const { execution } = await waitForTask('wait-fail');
    await finishExecution(api, execution, 'failed', { exitCode: 3, message: 'the shell script exited with status 3' });
    const result = await run.done;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/failed \(exit_code, exit code 3\): the shell script exited with status 3/);
  });

  it('create --wait exits 130 when the task is cancelled (and cancel says so)', async () => {
    const run = startCli(['task', 'create', 'sleep 100', '--title', 'wait-cancel', '--wait', '--json'], { env });
    const { id, execution } = await waitForTask('wait-cancel');
    const cancel = await runCli(['task', 'cancel', id], { env });
    expect(cancel.stdout).toMatch(/cancellation requested/);
    await finishExecution(api, execution, 'cancelled');
    const result = await run.done;
    expect(result.code).toBe(130);
    expect(TaskView.parse(JSON.parse(result.stdout))).toMatchObject({ id, state: 'cancelled' });
  });

  it('cancels a queued task and sends messages', async () => {
    const id = (await runCli(['task', 'create', 'echo'], { env })).stdout.trim();
    const say = await runCli(['task', 'say', id, 'also run the linter'], { env });
    expect(say).toMatchObject({ code: 0 });
    expect(say.stdout).toMatch(/^message msg_\w+ stored/);
    expect((await api.store.listMessages(id)).map((m) => m.text)).toEqual(['also run the linter']);
    const cancel = await runCli(['task', 'cancel', id, '--json'], { env });
    expect(JSON.parse(cancel.stdout)).toMatchObject({ id, state: 'cancelled' });
  });

  it("prints the server's message for API errors, and how to configure a missing server or key", async () => {
    const unknown = await runCli(['task', 'show', `tsk_${'a'.repeat(20)}`], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`airlock: task "tsk_${'a'.repeat(20)}" was not found (or belongs to another team)\n`);
    const badKey = await runCli(['task', 'list'], { env: { ...env, AIRLOCK_API_KEY: 'alk_nope' } });
    expect(badKey.stderr).toMatch(/the API key is not valid/);
    const noServer = await runCli(['task', 'list'], { env: { HOME: home, AIRLOCK_API_KEY: memberKey } });
    expect(noServer.stderr).toMatch(/pass --server URL, set AIRLOCK_SERVER, or put "server: URL" in/);
    const down = await runCli(['task', 'list', '--server', 'http://127.0.0.1:9'], { env });
    expect(down.stderr).toMatch(/could not reach the Airlock server at http:\/\/127\.0\.0\.1:9/);
  });
});

describe('airlock worker list', CLI_TEST_TIMEOUT, () => {
  it('lists workers as a table and as JSON', async () => {
    const now = Date.now();
    await api.store.upsertWorker({ teamId, workerId: 'gpu-1', version: '0.1.0', backend: 'docker', labels: { zone: 'a' }, capacity: 2, connected: true, draining: false, connectedAt: now, lastSeenAt: now });
    const table = await runCli(['worker', 'list'], { env });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^WORKER\s+STATUS\s+BACKEND\s+VERSION\s+CAPACITY\s+LAST SEEN\s+LABELS$/m);
    expect(table.stdout).toMatch(/^gpu-1\s+connected\s+docker\s+0\.1\.0\s+2\s+\d+s ago\s+zone=a$/m);
    const json = JSON.parse((await runCli(['worker', 'list', '--json', '--server', api.url], { env: { HOME: home, AIRLOCK_API_KEY: memberKey } })).stdout);
    expect(json.workers.find((w: { worker_id: string }) => w.worker_id === 'gpu-1')).toMatchObject({ backend: 'docker', capacity: 2, connected: true });
  });
});

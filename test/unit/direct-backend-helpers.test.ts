// The small security helpers the direct backend stands on, fuzzed with hostile input: safe path
// joining, environment variable names, /proc parsing, and the pure workspace/environment builders.
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isValidEnvName } from '../../src/lib/env-name.js';
import { parseProcStat, processStartTime, readProcStat } from '../../src/lib/procfs.js';
import { safeJoin, unsafeSegmentReason } from '../../src/lib/safe-path.js';
import { longestSocketPath, taskEnvironment, workspaceLayout } from '../../src/worker/backends/direct/workspace.js';

describe('safeJoin', () => {
  const root = '/srv/airlock/ws';

  it('never returns a path outside the root, for any segments', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.string({ unit: 'binary', maxLength: 12 }),
            fc.constantFrom('..', '.', '', '/', '../..', 'a/../../b', '/etc/passwd', '\0', 'ok', '..\\..', '...'),
          ),
          { minLength: 1, maxLength: 4 },
        ),
        (segments) => {
          let joined: string;
          try {
            joined = safeJoin(root, ...segments);
          } catch {
            return; // refusing is always allowed
          }
          const relative = path.relative(root, joined);
          expect(relative).not.toBe('');
          expect(relative.startsWith('..')).toBe(false);
          expect(path.isAbsolute(relative)).toBe(false);
          expect(joined.includes('\0')).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('accepts plain names and says why it refuses the others', () => {
    expect(safeJoin(root, 'exe_abc', 'home')).toBe('/srv/airlock/ws/exe_abc/home');
    expect(() => safeJoin(root, '..')).toThrow(/parent/);
    expect(() => safeJoin(root, 'a/b')).toThrow(/separator/);
    expect(() => safeJoin(root, '')).toThrow(/empty/);
    expect(() => safeJoin(root, 'x\0y')).toThrow(/NUL/);
    expect(unsafeSegmentReason('...')).toBeUndefined();
  });
});

describe('isValidEnvName', () => {
  it('accepts exactly POSIX names', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 20 }), (name) => {
        expect(isValidEnvName(name)).toBe(/^[A-Za-z_][A-Za-z0-9_]*$/.test(name));
        if (isValidEnvName(name)) expect(name.includes('=') || name.includes('\0')).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('procfs', () => {
  it('parses /proc/<pid>/stat even when the command name has spaces and parentheses', () => {
    const text = '4242 (evil) (name ) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615';
    expect(parseProcStat(4242, text)).toEqual({ pid: 4242, state: 'S', ppid: 1, pgid: 4242, sid: 4242, startTime: 987654 });
    expect(parseProcStat(1, 'garbage')).toBeUndefined();
  });

  it('reads this process, and nothing for a pid that does not exist', async () => {
    const me = await readProcStat(process.pid);
    expect(me?.pid).toBe(process.pid);
    expect(me?.startTime).toBeGreaterThan(0);
    expect(await processStartTime(process.pid)).toBe(me?.startTime);
    expect(await readProcStat(2 ** 22 + 12345)).toBeUndefined();
  });
});

describe('workspace builders', () => {
  const layout = workspaceLayout('/ws', 'exe_aaaaaaaaaaaaaaaaaaaa');

  it('lays a workspace out under the root, and refuses anything but an execution id', () => {
    expect(layout).toEqual({
      dir: '/ws/exe_aaaaaaaaaaaaaaaaaaaa',
      home: '/ws/exe_aaaaaaaaaaaaaaaaaaaa/home',
      tmp: '/ws/exe_aaaaaaaaaaaaaaaaaaaa/tmp',
      work: '/ws/exe_aaaaaaaaaaaaaaaaaaaa/work',
      socket: '/ws/exe_aaaaaaaaaaaaaaaaaaaa/gateway.sock',
      meta: '/ws/exe_aaaaaaaaaaaaaaaaaaaa/meta.json',
      gitconfig: '/ws/exe_aaaaaaaaaaaaaaaaaaaa/home/.gitconfig',
    });
    for (const bad of ['../etc', 'exe_AAAAAAAAAAAAAAAAAAAA', 'exe_aaaaaaaaaaaaaaaaaaaa/..', '']) {
      expect(() => workspaceLayout('/ws', bad)).toThrow(/not an execution id/);
    }
    expect(longestSocketPath('/ws')).toHaveLength(layout.socket.length);
  });

  it('builds the environment from nothing: no variable of the worker can appear unless requested', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,8}$/), fc.string({ maxLength: 10 }).filter((v) => !v.includes('\0'))), (requestEnv) => {
        fc.pre(!('AIRLOCK_API_KEY' in requestEnv));
        const env = taskEnvironment(layout, { executionId: 'exe_aaaaaaaaaaaaaaaaaaaa', path: '/bin', requestEnv });
        const fixed = ['PATH', 'LANG', 'HOME', 'TMPDIR', 'GIT_CONFIG_NOSYSTEM', 'GIT_CONFIG_GLOBAL', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'AIRLOCK_GATEWAY', 'AIRLOCK_WORKDIR', 'AIRLOCK_EXECUTION_ID'];
        for (const name of Object.keys(env)) expect(fixed.includes(name) || name in requestEnv).toBe(true);
        expect(env.HOME).toBe(layout.home);
        expect(env.GIT_CONFIG_GLOBAL).toBe(layout.gitconfig);
        expect(env.AIRLOCK_GATEWAY).toBe(`unix:${layout.socket}`);
      }),
    );
  });

  it("lets the request set PATH and LANG but never HOME, TMPDIR, git's config or the gateway", () => {
    const env = taskEnvironment(layout, {
      executionId: 'exe_aaaaaaaaaaaaaaaaaaaa',
      path: '/bin',
      requestEnv: { PATH: '/opt/bin', LANG: 'de_DE.UTF-8', HOME: '/root', GIT_CONFIG_GLOBAL: '/root/.gitconfig', AIRLOCK_GATEWAY: 'unix:/elsewhere' },
    });
    expect(env).toMatchObject({ PATH: '/opt/bin', LANG: 'de_DE.UTF-8', HOME: layout.home, GIT_CONFIG_GLOBAL: layout.gitconfig, AIRLOCK_GATEWAY: `unix:${layout.socket}` });
    expect(() => taskEnvironment(layout, { executionId: 'x', path: '/bin', requestEnv: { AIRLOCK_API_KEY: 'alk_…' } })).toThrow(/worker's credential/);
    expect(() => taskEnvironment(layout, { executionId: 'x', path: '/bin', requestEnv: { 'A B': '1' } })).toThrow(/not a valid environment variable name/);
    expect(() => taskEnvironment(layout, { executionId: 'x', path: '/bin', requestEnv: { A: 'x\0y' } })).toThrow(/NUL/);
  });
});

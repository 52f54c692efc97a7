// The built-in coding agent's tools against a real temp workdir, real files and real bash:
// path escapes refused, file tools' failure messages, shell limits (huge output, timeout,
// silence, abort), and runToolCall's handling of bad calls.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { builtinTools, DEFAULT_TOOL_LIMITS, runToolCall, toolDefinitions, type ToolContext, type ToolLimits } from '../../src/agent/harness/builtin/tools/index.js';

let base: string;
let workdir: string;
let outside: string;

function context(limits: Partial<ToolLimits> = {}, signal: AbortSignal = new AbortController().signal): ToolContext {
  return { workdir, env: { PATH: process.env.PATH, HOME: workdir }, signal, limits: { ...DEFAULT_TOOL_LIMITS, ...limits } };
}

function call(name: string, args: unknown, ctx: ToolContext = context()) {
  return runToolCall(name, JSON.stringify(args), ctx);
}

beforeEach(() => {
  base = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'airlock-tools-')));
  workdir = path.join(base, 'work');
  outside = path.join(base, 'outside');
  mkdirSync(path.join(workdir, 'src'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'secret.txt'), 'TOP SECRET\n');
});

afterEach(() => rmSync(base, { recursive: true, force: true }));

describe('runToolCall', () => {
  it('offers every tool with a JSON Schema and a description', () => {
    const defs = toolDefinitions();
    expect(defs.map((d) => d.name)).toEqual(['shell', 'read_file', 'write_file', 'edit_file', 'list_files', 'grep']);
    for (const d of defs) {
      expect(d.description.length).toBeGreaterThan(40);
      expect(d.parameters).toMatchObject({ type: 'object' });
    }
    expect(builtinTools.size).toBe(6);
  });

  it('answers an unknown tool with the names it knows', async () => {
    const r = await call('rm_rf', {});
    expect(r.ok).toBe(false);
    expect(r.output).toContain('no tool named "rm_rf"');
    expect(r.output).toContain('read_file');
  });

  it('answers arguments that are not JSON, or not an object', async () => {
    const r = await runToolCall('read_file', '{"path": "a.txt"', context());
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/not valid JSON/);
    const arr = await runToolCall('read_file', '["a.txt"]', context());
    expect(arr.ok).toBe(false);
    expect(arr.output).toMatch(/must be a JSON object, not an array/);
  });

  it('names the field that fails the schema', async () => {
    const missing = await call('read_file', { file: 'a.txt' });
    expect(missing.ok).toBe(false);
    expect(missing.output).toMatch(/Invalid arguments for read_file: path:/);
    const wrongType = await call('read_file', { path: 'a.txt', start_line: 'ten' });
    expect(wrongType.output).toMatch(/start_line:/);
    const zero = await call('read_file', { path: 'a.txt', start_line: 0 });
    expect(zero.output).toMatch(/start_line:/);
  });
});

describe('path safety in the tools', () => {
  beforeEach(() => {
    symlinkSync(outside, path.join(workdir, 'link-out'));
    symlinkSync(path.join(outside, 'secret.txt'), path.join(workdir, 'secret-link'));
  });

  it.each([
    ['read_file', { path: '../outside/secret.txt' }],
    ['read_file', { path: '../../../../../../etc/passwd' }],
    ['read_file', { path: '/etc/passwd' }],
    ['read_file', { path: 'link-out/secret.txt' }],
    ['read_file', { path: 'secret-link' }],
    ['write_file', { path: 'link-out/new.txt', content: 'x' }],
    ['write_file', { path: 'link-out/deep/new.txt', content: 'x' }],
    ['write_file', { path: 'secret-link', content: 'x' }],
    ['write_file', { path: '../escaped.txt', content: 'x' }],
    ['edit_file', { path: 'secret-link', old_string: 'TOP', new_string: 'NOT' }],
    ['list_files', { path: 'link-out' }],
    ['grep', { pattern: 'SECRET', path: '..' }],
  ])('%s %j is refused', async (name, args) => {
    const r = await call(name, args);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/Refused: .*outside the working directory/);
    expect(r.output).not.toContain('TOP SECRET');
    expect(readFileSync(path.join(outside, 'secret.txt'), 'utf8')).toBe('TOP SECRET\n');
    expect(existsSync(path.join(outside, 'new.txt'))).toBe(false);
    expect(existsSync(path.join(outside, 'deep'))).toBe(false);
    expect(existsSync(path.join(base, 'escaped.txt'))).toBe(false);
  });

  it('grep and list_files do not follow symlinks out of the workdir', async () => {
    writeFileSync(path.join(workdir, 'src', 'a.ts'), 'const SECRET = 1;\n');
    const g = await call('grep', { pattern: 'SECRET' });
    expect(g.ok).toBe(true);
    expect(g.output).toBe('src/a.ts:1: const SECRET = 1;');
    const l = await call('list_files', {});
    expect(l.output.split('\n')).toEqual(['link-out -> (symlink)', 'secret-link -> (symlink)', 'src/a.ts']);
  });
});

describe('read_file', () => {
  it('numbers lines and reads a range', async () => {
    writeFileSync(path.join(workdir, 'a.txt'), Array.from({ length: 12 }, (_, i) => `line ${i + 1}`).join('\n') + '\n');
    const all = await call('read_file', { path: 'a.txt' });
    expect(all.ok).toBe(true);
    expect(all.output.split('\n')[0]).toBe(' 1\tline 1');
    const part = await call('read_file', { path: 'a.txt', start_line: 3, end_line: 4 });
    expect(part.output).toBe('3\tline 3\n4\tline 4\n');
    const past = await call('read_file', { path: 'a.txt', start_line: 40 });
    expect(past.ok).toBe(false);
    expect(past.output).toContain('has 12 lines');
  });

  it('refuses a binary file', async () => {
    writeFileSync(path.join(workdir, 'blob.bin'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]));
    const r = await call('read_file', { path: 'blob.bin' });
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/binary file/);
  });

  it('cuts a large file and says how to read on', async () => {
    writeFileSync(path.join(workdir, 'big.txt'), Array.from({ length: 5000 }, (_, i) => `row ${i + 1} ${'x'.repeat(40)}`).join('\n'));
    const r = await call('read_file', { path: 'big.txt' }, context({ maxOutputChars: 2000 }));
    expect(r.ok).toBe(true);
    expect(r.truncated).toBe(true);
    expect(r.output.length).toBeLessThan(2200);
    expect(r.output).toMatch(/output cut at line (\d+) of 5000: read on with start_line=\d+/);
  });

  it('says when the file does not exist or is a directory', async () => {
    expect((await call('read_file', { path: 'nope.txt' })).output).toMatch(/does not exist/);
    expect((await call('read_file', { path: 'src' })).output).toMatch(/is a directory — use list_files/);
  });
});

describe('write_file and edit_file', () => {
  it('creates parents, then overwrites', async () => {
    const created = await call('write_file', { path: 'new/deep/x.ts', content: 'export const x = 1;\n' });
    expect(created).toMatchObject({ ok: true, output: 'Created new/deep/x.ts (20 bytes).' });
    const over = await call('write_file', { path: 'new/deep/x.ts', content: 'y' });
    expect(over.output).toMatch(/^Overwrote/);
    expect(readFileSync(path.join(workdir, 'new/deep/x.ts'), 'utf8')).toBe('y');
  });

  it('replaces exactly one match, and refuses zero or several', async () => {
    const file = path.join(workdir, 'e.ts');
    writeFileSync(file, 'a = 1;\nb = 1;\nc = 2;\n');
    const none = await call('edit_file', { path: 'e.ts', old_string: 'd = 1;', new_string: 'd = 3;' });
    expect(none.ok).toBe(false);
    expect(none.output).toMatch(/not found in e.ts — read the file/);
    const many = await call('edit_file', { path: 'e.ts', old_string: '= 1;', new_string: '= 9;' });
    expect(many.ok).toBe(false);
    expect(many.output).toMatch(/occurs 2 times in e.ts — include more surrounding lines/);
    expect(readFileSync(file, 'utf8')).toBe('a = 1;\nb = 1;\nc = 2;\n');
    const one = await call('edit_file', { path: 'e.ts', old_string: 'b = 1;', new_string: 'b = $&;' });
    expect(one).toMatchObject({ ok: true, meta: { replacements: 1 } });
    expect(readFileSync(file, 'utf8')).toBe('a = 1;\nb = $&;\nc = 2;\n');
    const all = await call('edit_file', { path: 'e.ts', old_string: ';', new_string: '', replace_all: true });
    expect(all.meta).toEqual({ replacements: 3 });
    expect(readFileSync(file, 'utf8')).toBe('a = 1\nb = $&\nc = 2\n');
  });
});

describe('list_files and grep', () => {
  beforeEach(() => {
    writeFileSync(path.join(workdir, 'src', 'a.ts'), 'export function load() {}\n// TODO: fix\n');
    writeFileSync(path.join(workdir, 'src', 'b.js'), 'function load() {}\n');
    writeFileSync(path.join(workdir, 'src', 'img.png'), Buffer.from([0, 1, 2, 0x6c, 0x6f, 0x61, 0x64]));
    mkdirSync(path.join(workdir, 'node_modules', 'dep'), { recursive: true });
    writeFileSync(path.join(workdir, 'node_modules', 'dep', 'index.ts'), 'function load() {}\n');
    mkdirSync(path.join(workdir, '.git'));
    writeFileSync(path.join(workdir, '.git', 'config'), 'load\n');
  });

  it('lists by glob, skipping .git and node_modules unless asked', async () => {
    expect((await call('list_files', { pattern: '**/*.ts' })).output).toBe('src/a.ts');
    expect((await call('list_files', { pattern: '**/*.ts', include_ignored: true })).output).toBe('node_modules/dep/index.ts\nsrc/a.ts');
    expect((await call('list_files', { pattern: 'src/*.{ts,js}' })).output).toBe('src/a.ts\nsrc/b.js');
    expect((await call('list_files', { pattern: '*.md' })).output).toMatch(/No files match/);
  });

  it('caps the listing with a marker', async () => {
    for (let i = 0; i < 30; i++) writeFileSync(path.join(workdir, `f${i}.txt`), '');
    const r = await call('list_files', { pattern: '*.txt' }, context({ maxListEntries: 10 }));
    expect(r.truncated).toBe(true);
    expect(r.output.split('\n')).toHaveLength(11);
    expect(r.output).toContain('[… 20 more files not shown');
  });

  it('greps with path:line, a glob filter, and skips binary files', async () => {
    const r = await call('grep', { pattern: 'function\\s+load' });
    expect(r.output).toBe('src/a.ts:1: export function load() {}\nsrc/b.js:1: function load() {}');
    expect((await call('grep', { pattern: 'load', glob: '*.ts' })).output).toBe('src/a.ts:1: export function load() {}');
    expect((await call('grep', { pattern: 'todo', ignore_case: true })).output).toBe('src/a.ts:2: // TODO: fix');
    expect((await call('grep', { pattern: 'nothing-here' })).output).toMatch(/No matches/);
  });

  it('refuses an invalid regex or glob, naming the problem', async () => {
    const r = await call('grep', { pattern: 'load(' });
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/Invalid regular expression "load\(": .*Unterminated group/);
    const g = await call('grep', { pattern: 'load', glob: '{a,b' });
    expect(g.ok).toBe(false);
    expect(g.output).toMatch(/Invalid glob: .*unclosed "\{"/);
  });

  it('caps matches with a marker', async () => {
    writeFileSync(path.join(workdir, 'many.txt'), 'hit\n'.repeat(50));
    const r = await call('grep', { pattern: 'hit' }, context({ maxGrepMatches: 5 }));
    expect(r.truncated).toBe(true);
    expect(r.output).toContain('[… 45 more matching lines not shown');
  });
});

describe('shell', () => {
  it('runs in the workdir and reports the exit code with interleaved output', async () => {
    const r = await call('shell', { command: 'pwd; echo out; echo err >&2; exit 3' });
    expect(r.ok).toBe(false);
    expect(r.output).toBe(`${workdir}\nout\nerr\n[exit code 3]`);
    expect(r.meta).toMatchObject({ exitCode: 3, stopped: null });
    const ok = await call('shell', { command: 'true' });
    expect(ok).toMatchObject({ ok: true, output: '(no output)\n[exit code 0]' });
  });

  it('keeps head and tail of 50 MB of output in bounded memory', async () => {
    const before = process.memoryUsage().heapUsed;
    const r = await call('shell', { command: 'echo START; head -c 50000000 /dev/zero | tr "\\0" x; echo; echo END' });
    const grown = process.memoryUsage().heapUsed - before;
    expect(r.ok).toBe(true);
    expect(r.truncated).toBe(true);
    expect(r.output.startsWith('START\nxxx')).toBe(true);
    expect(r.output).toMatch(/\[… \d+ characters omitted …\]/);
    expect(r.output.endsWith('xxx\nEND\n[exit code 0]')).toBe(true);
    expect(r.output.length).toBeLessThan(DEFAULT_TOOL_LIMITS.maxOutputChars + 200);
    expect(r.meta?.outputChars).toBe(50_000_000 + 'START\n\nEND\n'.length);
    // 50 M characters held as a JS string would be ≥ 50 MB; chunks in flight are far less.
    expect(grown).toBeLessThan(40 * 1024 * 1024);
  }, 60_000);

  it('stops a command that never exits at its timeout, with the output so far', async () => {
    const r = await call('shell', { command: 'echo begun; while true; do echo tick; sleep 0.2; done', timeout_seconds: 1 });
    expect(r.ok).toBe(false);
    expect(r.meta).toMatchObject({ stopped: 'timeout' });
    expect(r.output).toMatch(/^begun\ntick\n/);
    expect(r.output).toMatch(/still running after 1 s/);
  });

  it('stops a silent command and says it was silent', async () => {
    const started = Date.now();
    const r = await call('shell', { command: 'echo waiting; sleep 30' }, context({ silenceTimeoutMs: 500 }));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.ok).toBe(false);
    expect(r.meta).toMatchObject({ stopped: 'silence' });
    expect(r.output).toMatch(/^waiting\n\[stopped: the command printed nothing for 0.5 s/);
  });

  it('kills the whole group on abort, SIGKILL when SIGTERM is ignored', async () => {
    const controller = new AbortController();
    const marker = path.join(workdir, 'survived');
    setTimeout(() => controller.abort(), 300);
    const started = Date.now();
    const r = await call(
      'shell',
      { command: `trap '' TERM; (trap '' TERM; sleep 3; touch ${marker}) & echo started; sleep 30` },
      context({ killGraceMs: 300 }, controller.signal),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.ok).toBe(false);
    expect(r.meta).toMatchObject({ stopped: 'cancelled' });
    expect(r.output).toContain('started');
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    expect(existsSync(marker)).toBe(false);
  }, 15_000);

  it('does not start when already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const r = await call('shell', { command: 'touch ran' }, context({}, controller.signal));
    expect(r.ok).toBe(false);
    expect(existsSync(path.join(workdir, 'ran'))).toBe(false);
  });
});

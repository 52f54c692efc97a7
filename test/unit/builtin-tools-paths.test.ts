// The path-safety helper under hostile input, in a real temp directory with real symlinks, plus
// the pure helpers of the built-in tools (glob matcher, bounded output).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInside, resolveInsideRoot, safeJoin, UnsafePathError } from '../../src/lib/safe-path.js';
import { globMatcher, GlobSyntaxError } from '../../src/agent/harness/builtin/tools/glob.js';
import { HeadTail, truncateMiddle } from '../../src/agent/harness/builtin/tools/output.js';

let base: string;
let root: string;
let outside: string;

beforeAll(() => {
  base = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'airlock-safepath-')));
  root = path.join(base, 'work');
  outside = path.join(base, 'outside');
  mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'secret'), 'secret');
  writeFileSync(path.join(root, 'a', 'f.txt'), 'f');
  symlinkSync(outside, path.join(root, 'esc')); // absolute, out
  symlinkSync('../outside', path.join(root, 'escrel')); // relative, out
  symlinkSync('../..', path.join(root, 'a', 'up')); // climbs out
  symlinkSync('a', path.join(root, 'inlink')); // stays in
  symlinkSync('b/../..', path.join(root, 'a', 'top')); // resolves to the root itself
  symlinkSync('../outside/missing', path.join(root, 'dangling'));
  symlinkSync(path.join(outside, 'secret'), path.join(root, 'a', 'secretlink')); // final component out
  symlinkSync('loop2', path.join(root, 'loop1'));
  symlinkSync('loop1', path.join(root, 'loop2'));
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

/** Where the kernel would really land for `p` (following every symlink, missing parts allowed). */
function physical(p: string): string {
  return execFileSync('realpath', ['-m', '--', p], { encoding: 'utf8' }).trimEnd();
}

describe('resolveInsideRoot', () => {
  const segment = fc.constantFrom('..', '.', '', 'a', 'b', 'esc', 'escrel', 'up', 'inlink', 'top', 'dangling', 'secretlink', 'f.txt', 'new', 'loop1', '...', 'work');
  const hostile = fc.oneof(
    fc.array(segment, { maxLength: 6 }).map((s) => s.join('/')),
    fc.tuple(fc.constantFrom('/', '/etc/', '//', 'ROOT/', 'OUTSIDE/'), fc.array(segment, { maxLength: 5 })).map(([prefix, s]) => prefix + s.join('/')),
    fc.string({ maxLength: 20 }),
    fc.string({ unit: fc.constantFrom('.', '/', '\\', '\0', 'a', 'é', ' '), maxLength: 12 }),
  );

  it('never returns a path that really leads outside the root (property, real symlinks)', async () => {
    await fc.assert(
      fc.asyncProperty(hostile, async (raw) => {
        const requested = raw.replace(/^ROOT\//, root + '/').replace(/^OUTSIDE\//, outside + '/');
        let resolved: string;
        try {
          resolved = await resolveInsideRoot(root, requested);
        } catch (err) {
          expect(err).toBeInstanceOf(UnsafePathError);
          return;
        }
        expect(isInside(root, resolved)).toBe(true);
        expect(isInside(root, physical(resolved))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('accepts ordinary paths inside, including through inside symlinks and not-yet-existing files', async () => {
    expect(await resolveInsideRoot(root, 'a/f.txt')).toBe(path.join(root, 'a', 'f.txt'));
    expect(await resolveInsideRoot(root, '.')).toBe(root);
    expect(await resolveInsideRoot(root, 'new/dir/file.ts')).toBe(path.join(root, 'new', 'dir', 'file.ts'));
    expect(await resolveInsideRoot(root, 'inlink/b/x')).toBe(path.join(root, 'a', 'b', 'x'));
    expect(await resolveInsideRoot(root, 'a/top/a')).toBe(path.join(root, 'a'));
    expect(await resolveInsideRoot(root, path.join(root, 'a'))).toBe(path.join(root, 'a'));
    expect(await resolveInsideRoot(root, 'a/../a/b')).toBe(path.join(root, 'a', 'b'));
  });

  it.each([
    ['../../etc/passwd'],
    ['/etc/passwd'],
    ['..'],
    ['esc/secret'],
    ['escrel/secret'],
    ['esc'],
    ['a/up/outside/secret'],
    ['a/secretlink'],
    ['esc/new-file'],
    ['esc/new/dir/file'],
    ['dangling'],
    ['loop1/x'],
    ['a\0b'],
    [''],
  ])('refuses %j', async (requested) => {
    await expect(resolveInsideRoot(root, requested)).rejects.toBeInstanceOf(UnsafePathError);
  });

  it('works when the root itself is reached through a symlink', async () => {
    const alias = path.join(base, 'alias');
    symlinkSync(root, alias);
    expect(await resolveInsideRoot(alias, 'a/f.txt')).toBe(path.join(root, 'a', 'f.txt'));
    expect(await resolveInsideRoot(alias, path.join(alias, 'a'))).toBe(path.join(root, 'a'));
    await expect(resolveInsideRoot(alias, '../outside/secret')).rejects.toBeInstanceOf(UnsafePathError);
  });

  it('keeps safeJoin as it was', () => {
    expect(safeJoin('/r', 'x')).toBe('/r/x');
    expect(() => safeJoin('/r', '..')).toThrow(UnsafePathError);
  });
});

describe('globMatcher', () => {
  it.each([
    ['*.ts', 'a.ts', true],
    ['*.ts', 'src/a.ts', false],
    ['src/*.ts', 'src/a.ts', true],
    ['src/*.ts', 'src/x/a.ts', false],
    ['src/**/*.ts', 'src/a.ts', true],
    ['src/**/*.ts', 'src/x/y/a.ts', true],
    ['**', 'any/thing/here', true],
    ['src/**', 'src/x/y', true],
    ['src/**', 'srcx/y', false],
    ['**/*.{ts,tsx}', 'a/b.tsx', true],
    ['**/*.{ts,tsx}', 'a/b.js', false],
    ['{src,test}/**/*.{ts,j{s,sx}}', 'test/a/b.jsx', true],
    ['?.md', 'a.md', true],
    ['?.md', '/.md', false],
    ['[abc].txt', 'b.txt', true],
    ['[!abc].txt', 'b.txt', false],
    ['[!abc].txt', 'd.txt', true],
    ['[a-c]*', 'cat', true],
    ['a.b', 'axb', false],
    ['\\*.md', '*.md', true],
    ['\\*.md', 'a.md', false],
    ['(x)+$.txt', '(x)+$.txt', true],
    ['./src/*.ts', 'src/a.ts', true],
  ])('%j on %j → %s', (pattern, p, expected) => {
    expect(globMatcher(pattern)(p)).toBe(expected);
  });

  it('matchBase makes a slash-free pattern match the file name at any depth', () => {
    expect(globMatcher('*.ts', { matchBase: true })('src/deep/a.ts')).toBe(true);
    expect(globMatcher('src/*.ts', { matchBase: true })('x/src/a.ts')).toBe(false);
  });

  it('rejects malformed globs with a GlobSyntaxError', () => {
    expect(() => globMatcher('{a,b')).toThrow(GlobSyntaxError);
    expect(() => globMatcher('a\\')).toThrow(GlobSyntaxError);
    expect(() => globMatcher('[z-a]')).toThrow(GlobSyntaxError);
  });

  it('never lets a single star cross a directory, and literal patterns match only themselves (property)', () => {
    const name = fc.string({ unit: fc.constantFrom('a', 'b', '.', '-', '(', ')', '+', '$', '^', '|'), minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(name, name, (x, y) => {
        expect(globMatcher('*')(`${x}/${y}`)).toBe(false);
        expect(globMatcher('*/*')(`${x}/${y}`)).toBe(true);
        const literal = x.replace(/[*?[{\\]/g, '\\$&');
        expect(globMatcher(literal)(x)).toBe(true);
        expect(globMatcher(literal)(x === y ? y + 'z' : y)).toBe(false);
      }),
    );
  });
});

describe('HeadTail', () => {
  it('keeps head and tail in bounded memory and says how much is omitted', () => {
    const buffer = new HeadTail(100);
    for (let i = 0; i < 10_000; i++) {
      buffer.push(`${i}`.padStart(10, '-'));
      expect(buffer.retainedChars).toBeLessThanOrEqual(100);
    }
    const text = buffer.text();
    expect(text.startsWith('---------0')).toBe(true);
    expect(text.endsWith('------9999')).toBe(true);
    expect(text).toContain('[… 99900 characters omitted …]');
    expect(buffer.totalChars).toBe(100_000);
    expect(buffer.truncated).toBe(true);
  });

  it('is exact when everything fits, and agrees with truncateMiddle (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 30 })), fc.integer({ min: 1, max: 60 }), (chunks, limit) => {
        const buffer = new HeadTail(limit);
        for (const c of chunks) buffer.push(c);
        const all = chunks.join('');
        expect(buffer.retainedChars).toBeLessThanOrEqual(limit);
        expect(buffer.text()).toBe(truncateMiddle(all, limit).text);
        if (all.length <= limit) expect(buffer.text()).toBe(all);
        else {
          expect(buffer.text().startsWith(all.slice(0, Math.ceil(limit / 2)))).toBe(true);
          expect(buffer.text().endsWith(all.slice(all.length - Math.floor(limit / 2)))).toBe(true);
        }
      }),
    );
  });
});

/**
 * The search tools: `list_files` (paths matching a glob) and `grep` (lines matching a JavaScript
 * regex), over a walk of the working directory that skips `.git` and `node_modules` by default.
 *
 * Invariants: the walk starts at a path resolved inside the working directory and never follows a
 * symlink (a link is listed by name, never descended into or read), so it cannot leave it; the
 * walk, the listing and the matches are each capped, so a huge tree returns promptly.
 */
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import * as z from 'zod';
import { BINARY_SNIFF_BYTES } from './files.js';
import { globMatcher, GlobSyntaxError } from './glob.js';
import { truncateMiddle } from './output.js';
import { errorText, resolveToolPath } from './paths.js';
import { fail, type Tool, type ToolContext, type ToolResult } from './types.js';

/** Directories a model almost never means to search, and which can hold millions of files. */
const SKIPPED_DIRECTORIES = new Set(['.git', 'node_modules']);
/** Most directory entries one walk visits: a bound on time for a pathological tree. */
const MAX_WALK_ENTRIES = 200_000;
/** Files larger than this are not grepped (logs, data dumps): the shell can do it deliberately. */
const MAX_GREP_FILE_BYTES = 5 * 1024 * 1024;
/** A matching line longer than this is cut in grep output. */
const MAX_MATCH_LINE_CHARS = 300;

interface WalkEntry {
  /** Relative to the working directory, `/`-separated. */
  relative: string;
  absolute: string;
  kind: 'file' | 'symlink';
}

interface Walk {
  entries: WalkEntry[];
  /** True when MAX_WALK_ENTRIES stopped the walk early. */
  incomplete: boolean;
}

async function walk(root: string, start: string, includeIgnored: boolean): Promise<Walk> {
  const entries: WalkEntry[] = [];
  let visited = 0;
  const pending = [start];
  while (pending.length > 0) {
    const directory = pending.pop()!;
    let children;
    try {
      children = await readdir(directory, { withFileTypes: true });
    } catch {
      continue; // unreadable or vanished: skip it, the walk goes on
    }
    children.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
    for (const child of children) {
      if (++visited > MAX_WALK_ENTRIES) return { entries, incomplete: true };
      const absolute = path.join(directory, child.name);
      const relative = path.relative(root, absolute).split(path.sep).join('/');
      if (child.isDirectory()) {
        if (!includeIgnored && SKIPPED_DIRECTORIES.has(child.name)) continue;
        pending.push(absolute);
      } else if (child.isFile()) {
        entries.push({ relative, absolute, kind: 'file' });
      } else if (child.isSymbolicLink()) {
        entries.push({ relative, absolute, kind: 'symlink' });
      }
    }
  }
  entries.sort((a, b) => (a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0));
  return { entries, incomplete: false };
}

/** Resolve `requested` as a directory to walk; the working directory's realpath is the root. */
async function walkStart(context: ToolContext, requested: string): Promise<{ ok: true; root: string; start: string } | { ok: false; result: ToolResult }> {
  const rootResolved = await resolveToolPath(context, '.');
  if (!rootResolved.ok) return rootResolved;
  const resolved = await resolveToolPath(context, requested);
  if (!resolved.ok) return resolved;
  try {
    const info = await stat(resolved.path);
    if (!info.isDirectory()) return { ok: false, result: fail(`${resolved.shown} is not a directory — give a directory as path (or omit it for the working directory).`) };
  } catch (err) {
    return { ok: false, result: fail(`Cannot search ${resolved.shown}: ${errorText(err)} — check the path with list_files.`) };
  }
  return { ok: true, root: rootResolved.path, start: resolved.path };
}

function compileGlob(pattern: string, matchBase: boolean): { ok: true; match: (p: string) => boolean } | { ok: false; result: ToolResult } {
  try {
    return { ok: true, match: globMatcher(pattern, { matchBase }) };
  } catch (err) {
    if (err instanceof GlobSyntaxError) return { ok: false, result: fail(`Invalid glob: ${err.message}.`) };
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
const listInput = z.object({
  pattern: z.string().min(1).optional().describe('Glob matched against paths relative to the working directory, e.g. "src/**/*.ts" (default "**": everything).'),
  path: z.string().optional().describe('Directory to search in (default: the working directory).'),
  include_ignored: z.boolean().optional().describe('Also look inside .git and node_modules (default false).'),
});
type ListInput = z.infer<typeof listInput>;

export const listFilesTool: Tool<ListInput> = {
  name: 'list_files',
  description:
    'List files whose path (relative to the working directory) matches a glob: "*" and "?" within a directory name, "**" across directories, "{a,b}" alternatives, "[abc]" classes. ' +
    'Example: "src/**/*.{ts,tsx}". Skips .git and node_modules unless include_ignored is true. Symlinks are listed with " -> (symlink)" and not followed.',
  inputSchema: listInput,
  async run(args, context) {
    const start = await walkStart(context, args.path ?? '.');
    if (!start.ok) return start.result;
    const glob = compileGlob(args.pattern ?? '**', false);
    if (!glob.ok) return glob.result;
    const { entries, incomplete } = await walk(start.root, start.start, args.include_ignored ?? false);
    const matched = entries.filter((e) => glob.match(e.relative));
    const cap = context.limits.maxListEntries;
    const lines = matched.slice(0, cap).map((e) => (e.kind === 'symlink' ? `${e.relative} -> (symlink)` : e.relative));
    let output = lines.length > 0 ? lines.join('\n') : `No files match ${JSON.stringify(args.pattern ?? '**')}.`;
    const truncated = matched.length > cap || incomplete;
    if (matched.length > cap) output += `\n[… ${matched.length - cap} more files not shown — use a narrower pattern or path …]`;
    if (incomplete) output += `\n[… the search stopped after ${MAX_WALK_ENTRIES} entries — use a narrower path …]`;
    const cut = truncateMiddle(output, context.limits.maxOutputChars);
    const result: ToolResult = { ok: true, output: cut.text, meta: { matches: matched.length } };
    if (truncated || cut.truncated) result.truncated = true;
    return result;
  },
};

// ---------------------------------------------------------------------------------------------
const grepInput = z.object({
  pattern: z.string().min(1).describe('JavaScript regular expression, e.g. "function\\\\s+load" (no surrounding slashes).'),
  path: z.string().optional().describe('Directory to search in (default: the working directory).'),
  glob: z.string().min(1).optional().describe('Only files whose path matches this glob; without "/" it matches the file name at any depth, e.g. "*.ts".'),
  ignore_case: z.boolean().optional().describe('Match case-insensitively (default false).'),
});
type GrepInput = z.infer<typeof grepInput>;

async function readTextFile(file: string): Promise<string | undefined> {
  const handle = await open(file, 'r');
  try {
    const info = await handle.stat();
    if (info.size > MAX_GREP_FILE_BYTES) return undefined;
    const buffer = await handle.readFile();
    if (buffer.subarray(0, BINARY_SNIFF_BYTES).includes(0)) return undefined;
    return buffer.toString('utf8');
  } finally {
    await handle.close();
  }
}

export const grepTool: Tool<GrepInput> = {
  name: 'grep',
  description:
    'Search file contents for a JavaScript regular expression; prints "path:line: text" for each matching line. ' +
    'Narrow it with glob (e.g. "*.ts") and path. Skips binary files, files over 5 MB, .git and node_modules.',
  inputSchema: grepInput,
  async run(args, context) {
    let regex: RegExp;
    try {
      regex = new RegExp(args.pattern, args.ignore_case ? 'i' : '');
    } catch (err) {
      return fail(`Invalid regular expression ${JSON.stringify(args.pattern)}: ${(err as Error).message} — fix it (JavaScript syntax; escape literal characters such as "(" as "\\(").`);
    }
    const start = await walkStart(context, args.path ?? '.');
    if (!start.ok) return start.result;
    let match: (p: string) => boolean = () => true;
    if (args.glob !== undefined) {
      const glob = compileGlob(args.glob, true);
      if (!glob.ok) return glob.result;
      match = glob.match;
    }
    const { entries, incomplete } = await walk(start.root, start.start, false);
    const cap = context.limits.maxGrepMatches;
    const lines: string[] = [];
    let total = 0;
    let skipped = 0;
    for (const entry of entries) {
      if (entry.kind !== 'file' || !match(entry.relative)) continue;
      if (context.signal.aborted) return fail('The search was stopped: the task is being cancelled.');
      let text: string | undefined;
      try {
        text = await readTextFile(entry.absolute);
      } catch {
        text = undefined;
      }
      if (text === undefined) {
        skipped++;
        continue;
      }
      const fileLines = text.split('\n');
      for (let i = 0; i < fileLines.length; i++) {
        const line = fileLines[i]!;
        if (!regex.test(line)) continue;
        total++;
        if (lines.length < cap) {
          const shown = line.length > MAX_MATCH_LINE_CHARS ? `${line.slice(0, MAX_MATCH_LINE_CHARS)} [… line cut]` : line;
          lines.push(`${entry.relative}:${i + 1}: ${shown}`);
        }
      }
    }
    let output = lines.length > 0 ? lines.join('\n') : `No matches for ${JSON.stringify(args.pattern)}.`;
    if (total > cap) output += `\n[… ${total - cap} more matching lines not shown — use a more specific pattern, glob or path …]`;
    if (incomplete) output += `\n[… the search stopped after ${MAX_WALK_ENTRIES} entries — use a narrower path …]`;
    const cut = truncateMiddle(output, context.limits.maxOutputChars);
    const result: ToolResult = { ok: true, output: cut.text, meta: { matches: total, skippedFiles: skipped } };
    if (total > cap || incomplete || cut.truncated) result.truncated = true;
    return result;
  },
};

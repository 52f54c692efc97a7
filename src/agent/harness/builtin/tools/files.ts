/**
 * The file tools: `read_file` (line-numbered, ranged, binary refused), `write_file` (create or
 * overwrite, parents created) and `edit_file` (exact, unambiguous string replacement).
 *
 * Invariant: every path goes through `resolveToolPath`, so no tool reads or writes outside the
 * working directory, whether by `..`, an absolute path or a symlink.
 */
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as z from 'zod';
import { errorText, resolveToolPath } from './paths.js';
import { fail, type Tool, type ToolResult } from './types.js';

/** Bytes inspected for NUL to call a file binary (what git and grep do, in spirit). */
export const BINARY_SNIFF_BYTES = 8 * 1024;
/** Larger files are not loaded at all: the model should use the shell (`sed -n`, `head`). */
const MAX_READ_FILE_BYTES = 20 * 1024 * 1024;
/** A longer line (minified code, data) is cut: one such line could fill the whole output. */
const MAX_LINE_CHARS = 2_000;

const pathField = z.string().describe('Path relative to the working directory, e.g. "src/index.ts".');

export async function looksBinary(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(BINARY_SNIFF_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, BINARY_SNIFF_BYTES, 0);
    return buffer.subarray(0, bytesRead).includes(0);
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------------------------------------
const readInput = z.object({
  path: pathField,
  start_line: z.number().int().min(1).optional().describe('First line to show, 1-based (default 1).'),
  end_line: z.number().int().min(1).optional().describe('Last line to show, inclusive (default: the end, within the output limit).'),
});
type ReadInput = z.infer<typeof readInput>;

export const readFileTool: Tool<ReadInput> = {
  name: 'read_file',
  description:
    'Read a text file, with line numbers ("   12\\tcode"). Use start_line and end_line to read part of a large file. ' +
    'The line numbers are not part of the file: leave them out of edit_file strings. Binary files are refused.',
  inputSchema: readInput,
  async run(args, context) {
    const resolved = await resolveToolPath(context, args.path);
    if (!resolved.ok) return resolved.result;
    const { path: file, shown } = resolved;
    if (args.end_line !== undefined && args.start_line !== undefined && args.end_line < args.start_line) {
      return fail(`end_line (${args.end_line}) is before start_line (${args.start_line}) — give a range with start_line <= end_line.`);
    }
    try {
      const info = await stat(file);
      if (info.isDirectory()) return fail(`${shown} is a directory — use list_files to see what it contains.`);
      if (!info.isFile()) return fail(`${shown} is not a regular file.`);
      if (info.size > MAX_READ_FILE_BYTES) {
        return fail(`${shown} is ${info.size} bytes, too large to read whole — use the shell, e.g. "sed -n '1,200p' ${shown}", or grep for what you need.`);
      }
      if (await looksBinary(file)) {
        return fail(`${shown} is a binary file (it contains NUL bytes) — read_file shows text only; inspect it with the shell (e.g. "file", "xxd | head") if you must.`, {
          binary: true,
        });
      }
      const lines = (await readFile(file, 'utf8')).split('\n');
      if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
      const start = args.start_line ?? 1;
      if (start > lines.length) return fail(`${shown} has ${lines.length} lines; start_line ${start} is past the end.`);
      const last = Math.min(args.end_line ?? lines.length, lines.length);
      const width = String(last).length;
      let text = '';
      let shownUntil = start - 1;
      const budget = context.limits.maxOutputChars;
      for (let n = start; n <= last; n++) {
        let line = lines[n - 1]!;
        if (line.length > MAX_LINE_CHARS) line = `${line.slice(0, MAX_LINE_CHARS)} [… line cut: ${line.length} characters]`;
        const numbered = `${String(n).padStart(width)}\t${line}\n`;
        if (text.length + numbered.length > budget && n > start) break;
        text += numbered;
        shownUntil = n;
      }
      const meta = { lines: lines.length, startLine: start, endLine: shownUntil };
      if (shownUntil < last) {
        text += `[… output cut at line ${shownUntil} of ${lines.length}: read on with start_line=${shownUntil + 1} (and an end_line) …]\n`;
        return { ok: true, output: text, truncated: true, meta };
      }
      if (text === '') text = '(empty file)\n';
      return { ok: true, output: text, meta };
    } catch (err) {
      return ioFailure(err, shown, 'read');
    }
  },
};

// ---------------------------------------------------------------------------------------------
const writeInput = z.object({
  path: pathField,
  content: z.string().describe('The complete new content of the file.'),
});
type WriteInput = z.infer<typeof writeInput>;

export const writeFileTool: Tool<WriteInput> = {
  name: 'write_file',
  description:
    'Create a file, or replace a file’s whole content, creating missing parent directories. ' +
    'To change part of an existing file, use edit_file instead.',
  inputSchema: writeInput,
  async run(args, context) {
    const resolved = await resolveToolPath(context, args.path);
    if (!resolved.ok) return resolved.result;
    const { path: file, shown } = resolved;
    try {
      const existed = await stat(file).then(
        (s) => (s.isDirectory() ? 'directory' : 'file'),
        () => 'none',
      );
      if (existed === 'directory') return fail(`${shown} is a directory — give a file path.`);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, args.content, 'utf8');
      const bytes = Buffer.byteLength(args.content, 'utf8');
      return { ok: true, output: `${existed === 'file' ? 'Overwrote' : 'Created'} ${shown} (${bytes} bytes).`, meta: { bytes, created: existed === 'none' } };
    } catch (err) {
      return ioFailure(err, shown, 'write');
    }
  },
};

// ---------------------------------------------------------------------------------------------
const editInput = z.object({
  path: pathField,
  old_string: z.string().min(1).describe('The exact text to replace, including whitespace and indentation; include enough lines to make it unique.'),
  new_string: z.string().describe('The text to put in its place.'),
  replace_all: z.boolean().optional().describe('Replace every occurrence instead of requiring exactly one (default false).'),
});
type EditInput = z.infer<typeof editInput>;

/** Positions of non-overlapping occurrences of `needle` in `haystack`. */
function occurrences(haystack: string, needle: string): number[] {
  const found: number[] = [];
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + needle.length)) found.push(i);
  return found;
}

export const editFileTool: Tool<EditInput> = {
  name: 'edit_file',
  description:
    'Replace an exact string in a file with another. old_string must match the file exactly (whitespace included, without read_file’s line numbers) and ' +
    'occur exactly once, unless replace_all is true. Read the file first.',
  inputSchema: editInput,
  async run(args, context) {
    const resolved = await resolveToolPath(context, args.path);
    if (!resolved.ok) return resolved.result;
    const { path: file, shown } = resolved;
    if (args.old_string === args.new_string) return fail('old_string and new_string are the same — nothing would change.');
    try {
      if (await looksBinary(file)) return fail(`${shown} is a binary file — edit_file changes text files only.`);
      const content = await readFile(file, 'utf8');
      const found = occurrences(content, args.old_string);
      if (found.length === 0) {
        return fail(`old_string was not found in ${shown} — read the file (read_file) and copy the text exactly, whitespace included, without line numbers.`);
      }
      if (found.length > 1 && !args.replace_all) {
        return fail(
          `old_string occurs ${found.length} times in ${shown} — include more surrounding lines to make it unique, or set replace_all to true to change all of them.`,
          { matches: found.length },
        );
      }
      // Splice by position: String.replace would interpret `$&`, `$1`… in new_string.
      let next = '';
      let from = 0;
      for (const at of found) {
        next += content.slice(from, at) + args.new_string;
        from = at + args.old_string.length;
      }
      next += content.slice(from);
      await writeFile(file, next, 'utf8');
      const line = content.slice(0, found[0]).split('\n').length;
      return {
        ok: true,
        output: `Edited ${shown}: replaced ${found.length} occurrence${found.length === 1 ? '' : 's'} (first at line ${line}).`,
        meta: { replacements: found.length },
      };
    } catch (err) {
      return ioFailure(err, shown, 'edit');
    }
  },
};

function ioFailure(err: unknown, shown: string, verb: string): ToolResult {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return fail(`${shown} does not exist — check the path with list_files.`);
  if (code === 'ENOTDIR') return fail(`A part of ${shown} is a file, not a directory — check the path with list_files.`);
  if (code === 'EISDIR') return fail(`${shown} is a directory — give a file path.`);
  if (code === 'EACCES' || code === 'EPERM') return fail(`Permission denied to ${verb} ${shown}.`);
  return fail(`Could not ${verb} ${shown}: ${errorText(err)}.`);
}

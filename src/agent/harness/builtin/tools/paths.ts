/**
 * Path arguments of the tools, resolved inside the working directory by the central helper
 * (`src/lib/safe-path.ts`), and shown back to the model relative to it.
 *
 * Invariant: a tool touches the filesystem only through a path this module returned.
 */
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { resolveInsideRoot, UnsafePathError } from '../../../../lib/safe-path.js';
import { fail, type ToolContext, type ToolResult } from './types.js';

export type Resolved = { ok: true; path: string; shown: string } | { ok: false; result: ToolResult };

export async function resolveToolPath(context: ToolContext, requested: string): Promise<Resolved> {
  try {
    const resolved = await resolveInsideRoot(context.workdir, requested);
    return { ok: true, path: resolved, shown: await shownPath(context, resolved) };
  } catch (err) {
    if (err instanceof UnsafePathError) return { ok: false, result: fail(`Refused: ${err.message}.`, { refused: true }) };
    return { ok: false, result: fail(`Cannot use the path ${JSON.stringify(requested)}: ${errorText(err)}.`) };
  }
}

/** `absolute` as the model should see it: relative to the working directory, or "." for it. */
export async function shownPath(context: ToolContext, absolute: string): Promise<string> {
  const root = await realpath(context.workdir).catch(() => path.resolve(context.workdir));
  return path.relative(root, absolute) || '.';
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

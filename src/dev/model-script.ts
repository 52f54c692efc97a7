/**
 * The script of the scripted model server (a TEST DOUBLE, not a provider): the turns it plays
 * back, one per model request, and how a script file is read and checked. A script is parsed
 * once, at the edge (a file or a test's array), so the server never meets a malformed turn.
 * Invariant: a turn answers with content (text and/or tool calls), a scripted error, or a
 * mid-stream failure — never with nothing.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ValidationError } from '../protocol/errors.js';
import { parseOrThrow } from '../protocol/zod-errors.js';

/** One scripted answer to one model request. */
export interface ScriptedTurn {
  /** Assistant text. */
  text?: string;
  /** Tool calls; `arguments` reach the client as JSON split across stream chunks. */
  toolCalls?: Array<{ name: string; arguments: Record<string, unknown> }>;
  /** Token counts to report; estimated from the request and the answer when absent. */
  usage?: { input: number; output: number };
  /** Wait this long before answering (before the first byte of a stream). */
  delayMs?: number;
  /** Answer with this HTTP status and the provider's own error body instead of content. */
  error?: { status: number; message: string };
  /** Start a 200 stream, send some text, then fail with the provider's streaming error. */
  midStreamError?: string;
}

/**
 * Longest delay a turn may ask for: a test that needs more is testing a timeout, and should
 * inject a clock instead of making the suite wait.
 */
const MAX_DELAY_MS = 120_000;

const toolCallSchema = z.strictObject({
  name: z.string().min(1, 'a tool call needs a name'),
  arguments: z.record(z.string(), z.unknown()),
});

export const scriptedTurnSchema = z
  .strictObject({
    text: z.string().optional(),
    toolCalls: z.array(toolCallSchema).optional(),
    usage: z.strictObject({ input: z.number().int().nonnegative(), output: z.number().int().nonnegative() }).optional(),
    delayMs: z.number().int().nonnegative().max(MAX_DELAY_MS).optional(),
    error: z
      .strictObject({
        status: z.number().int().min(400, 'a scripted error status must be 4xx or 5xx').max(599, 'a scripted error status must be 4xx or 5xx'),
        message: z.string().min(1),
      })
      .optional(),
    midStreamError: z.string().min(1).optional(),
  })
  .check((ctx) => {
    const turn = ctx.value;
    if (turn.error && turn.midStreamError !== undefined) {
      ctx.issues.push({ code: 'custom', input: turn, path: ['midStreamError'], message: 'a turn has either `error` (fails before the stream) or `midStreamError` (fails during it), not both — keep one' });
    }
    const hasContent = turn.text !== undefined || (turn.toolCalls?.length ?? 0) > 0;
    if (!hasContent && !turn.error && turn.midStreamError === undefined) {
      ctx.issues.push({ code: 'custom', input: turn, path: [], message: 'the turn says nothing — give it `text`, `toolCalls`, `error` or `midStreamError`' });
    }
  });

export const scriptSchema = z.array(scriptedTurnSchema);

/** Check a script given in code; throws a ValidationError naming the turn and field. */
export function parseScript(turns: unknown, subject = 'model server script'): ScriptedTurn[] {
  return parseOrThrow(scriptSchema, turns, `${subject} (turns counted from [0])`);
}

/** Read a script file: a JSON or YAML array of turns (YAML is a superset of JSON, so one parser reads both). */
export async function loadScriptFile(path: string): Promise<ScriptedTurn[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ValidationError(`cannot read the model server script "${path}": ${(error as Error).message} — check the path`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ValidationError(`the model server script "${path}" is neither JSON nor YAML: ${(error as Error).message}`);
  }
  if (!Array.isArray(document)) {
    throw new ValidationError(`the model server script "${path}" must be a list of turns (e.g. \`- text: hello\`), but its top level is ${document === null ? 'empty' : typeof document}`);
  }
  return parseScript(document, `model server script "${path}"`);
}

/**
 * The built-in coding agent's tools: the registry the model loop offers to the model, and
 * `runToolCall`, the one entry point from a model's tool call (a name and a JSON string of
 * arguments) to a result.
 *
 * Invariant: `runToolCall` always resolves to a `ToolResult` — unknown names, arguments that are
 * not JSON or do not fit the schema, and tools that throw all become `ok: false` results telling
 * the model what to change.
 */
import * as z from 'zod';
import { editFileTool, readFileTool, writeFileTool } from './files.js';
import { grepTool, listFilesTool } from './search.js';
import { shellTool } from './shell.js';
import { fail, type Tool, type ToolContext, type ToolResult } from './types.js';

export { DEFAULT_TOOL_LIMITS, type Tool, type ToolContext, type ToolLimits, type ToolResult } from './types.js';

/** Every built-in tool, by name, in the order they are offered to the model. */
export const builtinTools: ReadonlyMap<string, Tool<never>> = new Map<string, Tool<never>>(
  [shellTool, readFileTool, writeFileTool, editFileTool, listFilesTool, grepTool].map((tool) => [tool.name, tool as unknown as Tool<never>]),
);

export interface ToolDefinition {
  name: string;
  description: string;
  /** JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
}

/** The tool list for a model API: name, description and JSON Schema of each tool's input. */
export function toolDefinitions(): ToolDefinition[] {
  return [...builtinTools.values()].map((tool) => ({
    name: tool.name,
    description: tool.description,
    parameters: z.toJSONSchema(tool.inputSchema, { io: 'input' }),
  }));
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.length > 0 ? issue.path.join('.') : '(arguments)';
      return `${field}: ${issue.message}`;
    })
    .join('; ');
}

/** Run the model's call of tool `name` with `rawArguments` (a JSON object as text). */
export async function runToolCall(name: string, rawArguments: string, context: ToolContext): Promise<ToolResult> {
  const tool = builtinTools.get(name);
  if (!tool) {
    return fail(`There is no tool named ${JSON.stringify(name)} — use one of: ${[...builtinTools.keys()].join(', ')}.`, { unknownTool: true });
  }
  let parsed: unknown;
  try {
    // Some models send "" for a call without arguments.
    parsed = rawArguments.trim() === '' ? {} : JSON.parse(rawArguments);
  } catch (err) {
    return fail(`The arguments for ${name} are not valid JSON (${(err as Error).message}) — send one JSON object, e.g. {"path": "src/index.ts"}.`, {
      invalidArguments: true,
    });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return fail(`The arguments for ${name} must be a JSON object, not ${Array.isArray(parsed) ? 'an array' : parsed === null ? 'null' : typeof parsed}.`, {
      invalidArguments: true,
    });
  }
  const checked = (tool.inputSchema as z.ZodType).safeParse(parsed);
  if (!checked.success) {
    return fail(`Invalid arguments for ${name}: ${describeIssues(checked.error)} — fix them and call again.`, { invalidArguments: true });
  }
  try {
    return await (tool as unknown as Tool<unknown>).run(checked.data, context);
  } catch (err) {
    // A tool bug must not end the run: the model gets to see it and try another way.
    return fail(`The ${name} tool failed unexpectedly: ${err instanceof Error ? err.message : String(err)} — try another way.`, { internalError: true });
  }
}

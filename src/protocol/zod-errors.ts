/**
 * Turns a zod failure into one ValidationError whose message names the field, the problem and,
 * where we can tell, the fix. Used at every edge: API bodies, config files, CLI flags, protocol
 * messages, task gateway requests.
 */
import type * as z from 'zod';
import { ValidationError } from './errors.js';

function pathOf(issue: z.core.$ZodIssue, prefix: string): string {
  const parts = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)));
  const joined = parts.reduce((acc, part) => (part.startsWith('[') ? acc + part : acc ? `${acc}.${part}` : part), '');
  if (!prefix) return joined || '(root)';
  if (!joined) return prefix;
  return joined.startsWith('[') ? `${prefix}${joined}` : `${prefix}.${joined}`;
}

function describeIssue(issue: z.core.$ZodIssue, where: string): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return `${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} — remove ${issue.keys.length > 1 ? 'them' : 'it'} (check the spelling against the documentation)`;
    case 'invalid_type':
      // A schema's own wording (it names the fix) wins over zod's default "Invalid input: …".
      if (!issue.message.startsWith('Invalid input')) return `${where}: ${issue.message}`;
      return `${where}: expected ${issue.expected}${'input' in issue && issue.input === undefined ? ', but it is missing' : ''}`;
    case 'too_big':
      return `${where}: ${issue.message}`;
    default:
      return `${where}: ${issue.message}`;
  }
}

export function zodToValidationError(error: z.ZodError, subject: string, prefix = ''): ValidationError {
  const lines = error.issues.slice(0, 5).map((issue) => describeIssue(issue, pathOf(issue, prefix)));
  const more = error.issues.length > 5 ? ` (and ${error.issues.length - 5} more)` : '';
  const first = error.issues[0];
  return new ValidationError(`invalid ${subject}: ${lines.join('; ')}${more}`, {
    field: first ? pathOf(first, prefix) : undefined,
    issues: error.issues.map((i) => ({ path: pathOf(i, prefix), message: i.message, code: i.code })),
  });
}

/** Parse `input` with `schema`, or throw a ValidationError naming the field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, subject: string, prefix = ''): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw zodToValidationError(result.error, subject, prefix);
  return result.data;
}

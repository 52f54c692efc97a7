/**
 * Command templates for `command:<name>` harnesses: an argv list with `{placeholder}`s, checked
 * by the worker when it reads its config and filled in by the agent inside the task environment.
 * Pure functions, shared by both sides so they agree on what a placeholder is.
 *
 * Invariants: a value is substituted inside one argv element and never split or interpreted by a
 * shell, so a prompt with spaces, quotes or `$(...)` stays one literal argument; only the known
 * placeholders exist (anything else in braces is an error, caught at config time); `{{` and `}}`
 * stand for literal braces.
 */

export const TEMPLATE_PLACEHOLDERS = ['prompt', 'prompt_file', 'model', 'base_url_openai', 'base_url_anthropic', 'workdir'] as const;
export type TemplatePlaceholder = (typeof TEMPLATE_PLACEHOLDERS)[number];

/** `{{`, `}}`, or a `{...}` group (which must name a placeholder). */
const TOKEN = /\{\{|\}\}|\{([^{}]*)\}/g;

/** Placeholders an argv template uses, and the brace groups that are not placeholders. */
export function scanTemplate(argv: readonly string[]): { used: Set<TemplatePlaceholder>; unknown: string[] } {
  const used = new Set<TemplatePlaceholder>();
  const unknown: string[] = [];
  for (const element of argv) {
    for (const match of element.matchAll(TOKEN)) {
      if (match[1] === undefined) continue; // an escaped brace
      const name = match[1];
      if ((TEMPLATE_PLACEHOLDERS as readonly string[]).includes(name)) used.add(name as TemplatePlaceholder);
      else unknown.push(`{${name}}`);
    }
  }
  return { used, unknown };
}

/** Fill `argv` with `values`; throws naming the placeholder when a used one has no value. */
export function fillTemplate(argv: readonly string[], values: Partial<Record<TemplatePlaceholder, string>>): string[] {
  return argv.map((element) =>
    element.replace(TOKEN, (token, name: string | undefined) => {
      if (token === '{{') return '{';
      if (token === '}}') return '}';
      const value = values[name as TemplatePlaceholder];
      if (value === undefined) {
        const known = (TEMPLATE_PLACEHOLDERS as readonly string[]).includes(name ?? '');
        throw new Error(
          known
            ? `the command template uses {${name}}, which has no value for this task${name === 'model' ? ' — give the task a model, or set `model:` on the worker\'s template' : ''}`
            : `the command template uses {${name}}, which is not a placeholder (known: ${TEMPLATE_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`,
        );
      }
      return value;
    }),
  );
}

/**
 * Command-template agents (`command:<name>` harnesses): the `harnesses:` section of the worker's
 * YAML, checked once when the config is read, and how an execution's spec is completed with
 * the template before the task gateway serves it.
 *
 *   harnesses:
 *     aider:
 *       command: [aider, --yes-always, --model, "openai/{model}", --message, "{prompt}"]
 *       model: gpt-4.1            # used when the task names no model
 *       env: { AIDER_CHECK_UPDATE: "false" }
 *
 * Invariants: a template uses only known placeholders (an unknown `{name}` is a config error
 * naming the element and the known set); a task that names a template this worker does not have
 * fails as `rejected` with a message saying which templates exist — it never runs something else.
 */
import { z } from 'zod';
import { isValidEnvName } from '../lib/env-name.js';
import { TEMPLATE_PLACEHOLDERS, scanTemplate } from '../lib/command-template.js';
import { COMMAND_HARNESS_PREFIX, type ExecutionSpec } from '../protocol/task.js';

/** The same names `command:<name>` accepts in a task (protocol/task.ts). */
const TEMPLATE_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** Variables the worker or the harness set themselves; a template may not override them. */
const RESERVED_TEMPLATE_ENV = new Set([
  'HOME',
  'TMPDIR',
  'PATH',
  'AIRLOCK_GATEWAY',
  'AIRLOCK_TASK_TOKEN',
  'AIRLOCK_TASK_TOKEN_STDIN',
  'AIRLOCK_EXECUTION_ID',
  'AIRLOCK_WORKDIR',
  'AIRLOCK_API_KEY',
  'OPENAI_BASE_URL',
  'ANTHROPIC_BASE_URL',
]);

const known = TEMPLATE_PLACEHOLDERS.map((p) => `{${p}}`).join(', ');

export const HarnessTemplateConfig = z.strictObject({
  command: z
    .array(z.string().min(1, 'an argv element cannot be empty'))
    .min(1, 'give the program and its arguments, like [aider, --message, "{prompt}"]')
    .superRefine((argv, ctx) => {
      argv.forEach((element, index) => {
        const { unknown } = scanTemplate([element]);
        for (const name of unknown) {
          ctx.addIssue({ code: 'custom', path: [index], message: `${name} is not a placeholder — use one of ${known} (write {{ and }} for literal braces)` });
        }
      });
    }),
  env: z
    .record(z.string(), z.string())
    .optional()
    .superRefine((env, ctx) => {
      for (const name of Object.keys(env ?? {})) {
        if (!isValidEnvName(name)) ctx.addIssue({ code: 'custom', path: [name], message: `"${name}" is not a valid environment variable name (letters, digits and _, not starting with a digit)` });
        else if (RESERVED_TEMPLATE_ENV.has(name)) ctx.addIssue({ code: 'custom', path: [name], message: `${name} is set by the worker or the agent itself and cannot be set by a template` });
      }
    }),
  model: z.string().min(1).max(200).optional(),
});

export const HarnessesConfig = z.record(z.string(), HarnessTemplateConfig).superRefine((templates, ctx) => {
  for (const name of Object.keys(templates)) {
    if (!TEMPLATE_NAME.test(name)) {
      ctx.addIssue({ code: 'custom', path: [name], message: `"${name}" is not a template name: use lowercase letters, digits and "-", starting with a letter (tasks name it as command:<name>)` });
    }
  }
});
export type HarnessesConfig = z.infer<typeof HarnessesConfig>;

export interface HarnessTemplate {
  command: string[];
  env: Record<string, string>;
  model: string | null;
}

export function resolveHarnessTemplates(config: HarnessesConfig | undefined): Record<string, HarnessTemplate> {
  const templates: Record<string, HarnessTemplate> = {};
  for (const [name, template] of Object.entries(config ?? {})) {
    templates[name] = { command: template.command, env: template.env ?? {}, model: template.model ?? null };
  }
  return templates;
}

export class UnknownHarnessTemplateError extends Error {
  readonly reason = 'rejected' as const;
}

/**
 * The spec as the task gateway serves it, and extra variables for the agent: for a
 * `command:<name>` task, the template's argv (and its default model, when the task has none).
 * Other harnesses pass through unchanged.
 */
export function specWithHarness(spec: ExecutionSpec, templates: Record<string, HarnessTemplate>): { spec: ExecutionSpec; env: Record<string, string> } {
  if (!spec.harness.startsWith(COMMAND_HARNESS_PREFIX)) return { spec, env: {} };
  const name = spec.harness.slice(COMMAND_HARNESS_PREFIX.length);
  const template = Object.hasOwn(templates, name) ? templates[name] : undefined;
  if (!template) {
    const have = Object.keys(templates);
    throw new UnknownHarnessTemplateError(
      `this worker has no command template "${name}" (harness ${spec.harness}); it has ${have.length > 0 ? have.map((n) => `command:${n}`).join(', ') : 'none'} — add \`harnesses: { ${name}: { command: [...] } }\` to the worker's YAML, or run the task on a worker that has it`,
    );
  }
  return {
    spec: { ...spec, harness_command: template.command, model: spec.model ?? template.model },
    env: template.env,
  };
}

/**
 * `command:<name>` harnesses: a CLI agent the worker's operator configured as an argv template
 * (`harnesses:` in the worker's YAML). The worker puts the template in the spec
 * (`harness_command`); here its placeholders are filled and it runs without a shell, with the
 * model proxy's URLs in `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL` and dummy API keys.
 *
 * Invariants: each placeholder's value stays inside its argv element (never split, never seen by
 * a shell); a spec without a template, or a template using a placeholder without a value, fails
 * the run with a message saying what to configure. Output is kept as plain `output` events.
 */
import { COMMAND_HARNESS_PREFIX } from '../../protocol/task.js';
import { fillTemplate, scanTemplate } from '../../lib/command-template.js';
import type { HarnessContext, HarnessDefinition, HarnessResult } from './harness.js';
import { DUMMY_API_KEY, runCliAgent, type CliSetup } from './cli-agent.js';

/** The harness for `command:<name>`; its template comes from the spec at run time. */
export function commandHarness(harnessName: string): HarnessDefinition {
  return {
    name: harnessName,
    run: async (context: HarnessContext): Promise<HarnessResult> => {
      const template = context.spec.harness_command;
      const name = harnessName.slice(COMMAND_HARNESS_PREFIX.length);
      if (!template || template.length === 0) {
        return fail(context, `the worker sent no command for the ${harnessName} harness — configure \`harnesses: { ${name}: { command: [...] } }\` in the worker's YAML`);
      }
      const { unknown } = scanTemplate(template);
      if (unknown.length > 0) return fail(context, `the ${harnessName} command template uses ${unknown.join(', ')}, which ${unknown.length === 1 ? 'is not a placeholder' : 'are not placeholders'}`);
      return runCliAgent(context, {
        name: harnessName,
        installHint: `\`${template[0]}\` on PATH (the ${harnessName} template's program)`,
        build: (setup: CliSetup) => {
          const argv = fillTemplate(template, {
            prompt: setup.prompt,
            prompt_file: setup.promptFile,
            base_url_openai: `${setup.proxy.url}/v1`,
            base_url_anthropic: setup.proxy.url,
            workdir: context.workdir,
            ...(context.spec.model ? { model: context.spec.model } : {}),
          });
          return {
            command: argv[0]!,
            args: argv.slice(1),
            env: {
              ...setup.env,
              OPENAI_BASE_URL: `${setup.proxy.url}/v1`,
              OPENAI_API_BASE: `${setup.proxy.url}/v1`,
              OPENAI_API_KEY: DUMMY_API_KEY,
              ANTHROPIC_BASE_URL: setup.proxy.url,
              ANTHROPIC_API_KEY: DUMMY_API_KEY,
              ...(context.spec.model ? { AIRLOCK_MODEL: context.spec.model } : {}),
            },
          };
        },
      });
    },
  };
}

function fail(context: HarnessContext, summary: string): HarnessResult {
  context.emit('error', { message: summary });
  return { outcome: 'failed', exitCode: 2, summary };
}

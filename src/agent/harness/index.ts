/**
 * The harness registry: which program runs a task, by the spec's `harness` name. The table is
 * typed by the protocol's `Harness` union, so adding a name there (the built-in coding agent,
 * `builtin`; third-party CLI agents such as `claude-code` or `codex`) fails to compile until its
 * harness is registered here. A CLI agent adapter is a `HarnessDefinition` that builds a command
 * line and environment (its model base URL pointed at the task gateway) and calls `runProcess`.
 */
import { COMMAND_HARNESS_PREFIX, type BuiltinHarness } from '../../protocol/task.js';
import { claudeCodeHarness } from './claude-code.js';
import { codexHarness } from './codex.js';
import { commandHarness } from './command.js';
import type { HarnessDefinition } from './harness.js';
import { builtinHarness } from './builtin/builtin.js';
import { shellHarness } from './shell.js';

const HARNESSES: { readonly [name in BuiltinHarness]: () => HarnessDefinition } = {
  builtin: () => builtinHarness(),
  shell: shellHarness,
  'claude-code': claudeCodeHarness,
  codex: codexHarness,
};

/** The harness called `name`, or undefined when this agent runtime does not have it. */
export function getHarness(name: string): HarnessDefinition | undefined {
  // `command:<name>`: a template the worker configured; the spec carries it (harness_command).
  if (name.startsWith(COMMAND_HARNESS_PREFIX)) return commandHarness(name);
  return Object.hasOwn(HARNESSES, name) ? HARNESSES[name as BuiltinHarness]() : undefined;
}

export function harnessNames(): string[] {
  return Object.keys(HARNESSES);
}

export type { HarnessContext, HarnessDefinition, HarnessResult, FollowUpMessage } from './harness.js';
export { runProcess, KILL_GRACE_MS, type ProcessSpec, type ProcessOutcome } from './process.js';

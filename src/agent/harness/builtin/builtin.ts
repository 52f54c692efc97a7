/**
 * The `builtin` harness: Airlock's own coding agent. It calls the model through the task gateway
 * (OpenAI Chat Completions, the task token as bearer) and works in the workdir with the built-in
 * tools (tools/). The loop, its budgets, follow-ups, cancellation and context management are in
 * loop.ts.
 */
import type { HarnessContext, HarnessDefinition, HarnessResult } from '../harness.js';
import { runBuiltinLoop, type BuiltinLoopOptions } from './loop.js';

export function builtinHarness(options: BuiltinLoopOptions = {}): HarnessDefinition {
  return {
    name: 'builtin',
    run(context: HarnessContext): Promise<HarnessResult> {
      return runBuiltinLoop(context, options);
    },
  };
}

/**
 * The agent runtime's own exit statuses (besides the harness's exit code, which it passes on).
 * A module of constants only, so that main.ts can use them without loading run.ts: in the bundle
 * that keeps git's credential helper, which needs none of the runtime, from initializing it.
 */

/** The command was not called right: unknown arguments, or the task environment's variables are missing or invalid. */
export const EXIT_USAGE = 2;
/** sysexits EX_UNAVAILABLE: the task gateway could not be reached. */
export const EXIT_GATEWAY_UNAVAILABLE = 69;
/** sysexits EX_SOFTWARE: a bug or an unexpected condition in the agent runtime. */
export const EXIT_INTERNAL = 70;

/**
 * The `shell` harness: the prompt is a bash script. It is written to a file in TMPDIR (so any
 * size and any quoting works) and run as `bash <file>` in the working directory. Exit status 0 is
 * success; anything else is failure with that exit code; a cancel stops the script's whole
 * process group. Follow-up messages cannot reach a running script: they are recorded in the
 * transcript as `message` events.
 */
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { HarnessContext, HarnessDefinition, HarnessResult } from './harness.js';
import { runProcess } from './process.js';

/** Bash from PATH: the task environment's own (a container image's bash, not the host's). */
const SHELL = 'bash';

export function shellHarness(): HarnessDefinition {
  return {
    name: 'shell',
    async run(context: HarnessContext): Promise<HarnessResult> {
      const tmp = context.env.TMPDIR || os.tmpdir();
      const script = path.join(tmp, `airlock-prompt-${randomBytes(6).toString('hex')}.sh`);
      await writeFile(script, context.spec.prompt, { mode: 0o600 });
      let running = true;
      const recordMessages = (async () => {
        for await (const message of context.messages()) {
          if (!running) break; // the script has ended: later messages have nothing to reach
          context.emit('message', { id: message.id, text: message.text });
        }
      })();
      try {
        const outcome = await runProcess({ command: SHELL, args: [script], cwd: context.workdir, env: context.env }, context);
        if (outcome.startError) {
          return { outcome: 'failed', exitCode: 127, summary: `could not start ${SHELL}: ${outcome.startError} — the task environment needs bash on PATH` };
        }
        if (outcome.cancelled) {
          const reason = context.signal.reason instanceof Error ? context.signal.reason.message : 'cancelled';
          return { outcome: 'cancelled', exitCode: outcome.exitCode, summary: reason };
        }
        if (outcome.exitCode === 0) return { outcome: 'succeeded', exitCode: 0, summary: null };
        const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with status ${outcome.exitCode}`;
        return { outcome: 'failed', exitCode: outcome.exitCode, summary: `the script ${how}` };
      } finally {
        running = false;
        await rm(script, { force: true });
        // Stop listening without waiting for another message.
        void recordMessages.catch(() => undefined);
      }
    },
  };
}

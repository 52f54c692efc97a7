/**
 * `airlock agent run`: the runtime inside a task environment. It reads where its task gateway is
 * (AIRLOCK_GATEWAY) and its token (AIRLOCK_TASK_TOKEN), fetches the execution's spec, runs the
 * spec's harness, streams its transcript through the reporter, turns a cancel (from the gateway,
 * or SIGTERM/SIGINT from the backend) into the harness's AbortSignal, and reports the result.
 *
 * Invariants:
 * - Every event is uploaded (or the upload deadline passed) before the result is posted, and the
 *   result is posted before the process exits.
 * - Every harness gets a `lifecycle` event when it starts and a `result` event when it ends.
 * - Before the harness, the workspace is prepared (repositories cloned, setup commands run); after
 *   it, the work is committed, measured and pushed (workspace/); both happen in this process,
 *   which alone holds the task token.
 * - Processes the harness starts never see the task token: it is removed from their environment.
 * - Exit status: the harness's exit code (0 for success); 2 when the environment is not set up
 *   (missing/invalid variables); 69 when the gateway cannot be reached; 70 for an internal error
 *   (exit-status.ts).
 */
import { mkdir } from 'node:fs/promises';
import { AGENT_ENV, type AgentResult } from '../protocol/gateway.js';
import { describeError } from '../protocol/errors.js';
import type { ExecutionSpec } from '../protocol/task.js';
import { Backoff } from '../lib/backoff.js';
import { ControlPoller } from './control.js';
import { EXIT_GATEWAY_UNAVAILABLE, EXIT_INTERNAL, EXIT_USAGE } from './exit-status.js';
import { getHarness, harnessNames } from './harness/index.js';
import type { HarnessContext, HarnessResult } from './harness/harness.js';
import { GatewayClient, GatewayRequestError, parseGatewayAddress } from './report/client.js';
import { Reporter } from './report/reporter.js';
import { HELPER_COMMAND } from './workspace/credential-helper.js';
import { collect, gatewayCredentialSource, prepare, type PreparedRepository } from './workspace/index.js';

/** What a cancelled harness that reports no exit code exits with: 128 + SIGTERM, as a shell would. */
const EXIT_CANCELLED = 143;

/**
 * How long to keep trying to reach the gateway for the spec: the worker starts the gateway before
 * the agent, so anything beyond a brief hiccup means the worker is gone.
 */
const SPEC_FETCH_DEADLINE_MS = 15_000;
/** How long to keep trying to deliver the transcript and the result after the harness ended. */
const FINAL_REPORT_DEADLINE_MS = 30_000;

export interface RunAgentOptions {
  env: NodeJS.ProcessEnv;
  /**
   * The command that started this runtime, without its subcommand — `[node, <root>/bin/airlock.js,
   * 'agent']` from the package, `[node, <agent.mjs>]` from the bundle (agent/commands.ts). git
   * runs it again, with `git-credential <action>`, as the credential helper of the agent's clone
   * and push.
   */
  selfCommand: readonly string[];
  /** Where diagnostics go (default: process.stderr). They stay in the task environment. */
  stderr?: (line: string) => void;
  /** Turn SIGTERM/SIGINT into a cancel (default true; tests that embed the runtime turn it off). */
  handleSignals?: boolean;
  /** Test seam: how long to keep trying to reach the gateway for the spec. */
  specDeadlineMs?: number;
  /** Where the token comes from when AIRLOCK_TASK_TOKEN_STDIN=1 (default: process.stdin). */
  stdin?: NodeJS.ReadableStream;
}

export async function runAgent(options: RunAgentOptions): Promise<number> {
  const say = options.stderr ?? ((line: string) => process.stderr.write(`${line}\n`));
  const { env } = options;

  const gatewayValue = env[AGENT_ENV.gateway];
  const token = env[AGENT_ENV.token] ?? (env[AGENT_ENV.tokenOnStdin] === '1' ? await readTokenLine(options.stdin ?? process.stdin) : undefined);
  if (!gatewayValue || !token) {
    const missing = [!gatewayValue && AGENT_ENV.gateway, !token && AGENT_ENV.token].filter(Boolean).join(' and ');
    say(
      `airlock agent run: ${missing} ${missing.includes(' and ') ? 'are' : 'is'} not set. This command runs inside a task environment, ` +
        `where the Airlock worker sets ${AGENT_ENV.gateway} (unix:/path/to/socket or http://host:port) and ${AGENT_ENV.token}; ` +
        'to run a task, use `airlock task create` (or start a worker) instead.',
    );
    return EXIT_USAGE;
  }
  let client: GatewayClient;
  try {
    client = new GatewayClient(parseGatewayAddress(gatewayValue), token);
  } catch (err) {
    say(`airlock agent run: ${describeError(err)}`);
    return EXIT_USAGE;
  }

  try {
    let spec: ExecutionSpec;
    try {
      spec = await fetchSpec(client, options.specDeadlineMs ?? SPEC_FETCH_DEADLINE_MS);
    } catch (err) {
      say(`airlock agent run: could not get this execution's spec: ${describeError(err)}`);
      return err instanceof GatewayRequestError && err.status === 0 ? EXIT_GATEWAY_UNAVAILABLE : EXIT_INTERNAL;
    }
    return await runExecution(client, token, spec, { ...options, say, handleSignals: options.handleSignals ?? true });
  } finally {
    client.close();
  }
}

async function fetchSpec(client: GatewayClient, deadlineMs: number): Promise<ExecutionSpec> {
  const backoff = new Backoff({ baseMs: 100, capMs: 2_000 });
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await client.getSpec();
    } catch (err) {
      const retryable = err instanceof GatewayRequestError && err.retryable;
      if (!retryable || Date.now() >= deadline) throw err;
      await sleep(Math.min(backoff.next(), Math.max(0, deadline - Date.now())));
    }
  }
}

async function runExecution(
  client: GatewayClient,
  token: string,
  spec: ExecutionSpec,
  { env, selfCommand, say, handleSignals }: { env: NodeJS.ProcessEnv; selfCommand: readonly string[]; say: (line: string) => void; handleSignals: boolean },
): Promise<number> {
  // A container backend may hand over a HOME that does not exist yet (on a fresh task volume):
  // git and the harnesses write their config there.
  if (env.HOME) await mkdir(env.HOME, { recursive: true, mode: 0o700 }).catch(() => undefined);
  const reporter = new Reporter(client, { warn: say });
  const poller = new ControlPoller(client, { warn: say });
  const abort = new AbortController();
  poller.signal.addEventListener('abort', () => abort.abort(poller.signal.reason), { once: true });
  const onSignal = (signal: NodeJS.Signals) => {
    if (!abort.signal.aborted) abort.abort(new Error(`the agent received ${signal}`));
  };
  if (handleSignals) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  poller.start();

  let result: HarnessResult;
  let failureReason: AgentResult['failure_reason'];
  let repositories: AgentResult['repositories'];
  const harness = getHarness(spec.harness);
  try {
    if (!harness) {
      result = {
        outcome: 'failed',
        exitCode: EXIT_INTERNAL,
        summary: `this agent runtime has no "${spec.harness}" harness (it has: ${harnessNames().join(', ')}) — upgrade the agent runtime the worker uses`,
      };
      reporter.emit('error', { message: result.summary });
    } else {
      const workdir = env[AGENT_ENV.workdir] || process.cwd();
      const emit: HarnessContext['emit'] = (kind, data) => reporter.emit(kind, data);
      const credentials = { source: gatewayCredentialSource(client), helper: [...selfCommand, HELPER_COMMAND] };
      const workspace = { env: harnessEnv(env), emit, credentials, keepDiff: (index: number, diff: Buffer) => client.putDiff(index, diff) };
      // Clone the repositories and run the setup commands (workspace/prepare.ts).
      const preparation = await prepare(spec, { ...workspace, workdir, signal: abort.signal });
      let prepared: PreparedRepository[] = [];
      if (!preparation.ok) {
        result = preparation.result;
        failureReason = preparation.failureReason;
      } else {
        prepared = preparation.repositories;
        reporter.emit('lifecycle', { phase: 'harness_started', harness: harness.name });
        const context: HarnessContext = {
          spec,
          workdir,
          env: workspace.env,
          emit,
          signal: abort.signal,
          messages: () => poller.messages(),
          gateway: { address: client.address, token },
        };
        try {
          result = await harness.run(context);
        } catch (err) {
          result = { outcome: 'failed', exitCode: EXIT_INTERNAL, summary: `the ${harness.name} harness failed: ${describeError(err)}` };
          reporter.emit('error', { message: result.summary });
        }
      }
      // Commit, measure and push what the harness did, whatever its outcome (workspace/results.ts).
      if (prepared.length > 0) repositories = await collect(spec, prepared, abort.signal.aborted ? { ...result, outcome: 'cancelled' } : result, workspace);
    }
    if (abort.signal.aborted && result.outcome === 'failed') {
      // Stopped on request: whatever the program did on its way out, the task was cancelled.
      result = { ...result, outcome: 'cancelled' };
    }
    const stopReason = result.stopReason ?? (result.outcome === 'cancelled' ? 'cancelled' : undefined);
    reporter.emit('result', {
      outcome: result.outcome,
      exit_code: result.exitCode,
      summary: result.summary,
      ...(stopReason ? { stop_reason: stopReason } : {}),
      ...(result.usage ? { usage: result.usage } : {}),
    });

    const delivered = await reporter.close(FINAL_REPORT_DEADLINE_MS);
    if (!delivered) say(`airlock agent run: ${reporter.pending} transcript event(s) could not be delivered to the worker`);
    const agentResult: AgentResult = {
      outcome: result.outcome,
      exit_code: result.exitCode,
      summary: truncateSummary(result.summary),
      ...(stopReason ? { stop_reason: stopReason } : {}),
      ...(repositories ? { repositories } : {}),
      ...(failureReason ? { failure_reason: failureReason } : {}),
    };
    await postResult(client, agentResult, say);
  } finally {
    await poller.stop();
    if (handleSignals) {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
  }
  if (result.outcome === 'succeeded') return 0;
  if (result.exitCode !== null && result.exitCode !== 0) return result.exitCode;
  return result.outcome === 'cancelled' ? EXIT_CANCELLED : 1;
}

/** The environment for the harness's processes: the agent's own, without the task token. */
function harnessEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy[AGENT_ENV.token];
  delete copy[AGENT_ENV.tokenOnStdin];
  return copy;
}

/** The gateway refuses summaries over 64 KiB (AgentResult); keep the start, which says the most. */
function truncateSummary(summary: string | null): string | null {
  const max = 64 * 1024;
  if (summary === null || summary.length <= max) return summary;
  return `${summary.slice(0, max - 20)} …(truncated)`;
}

async function postResult(client: GatewayClient, result: AgentResult, say: (line: string) => void): Promise<void> {
  const backoff = new Backoff({ baseMs: 100, capMs: 5_000 });
  const deadline = Date.now() + FINAL_REPORT_DEADLINE_MS;
  for (;;) {
    try {
      await client.postResult(result);
      return;
    } catch (err) {
      const retryable = err instanceof GatewayRequestError && err.retryable;
      if (!retryable || Date.now() >= deadline) {
        say(`airlock agent run: could not report the result to the worker: ${describeError(err)}`);
        return;
      }
      await sleep(Math.min(backoff.next(), Math.max(0, deadline - Date.now())));
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How long to wait for the token on stdin: the backend writes it before the agent even starts. */
const STDIN_TOKEN_TIMEOUT_MS = 5000;
/** A token is 43 base64url characters; anything much longer is not a token. */
const MAX_TOKEN_LINE = 1024;

/** The first line of `input` (the task token handed over by the backend), or undefined. */
async function readTokenLine(input: NodeJS.ReadableStream): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buffer = '';
    const done = (value: string | undefined) => {
      clearTimeout(timer);
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      if ('pause' in input && typeof input.pause === 'function') input.pause();
      resolve(value && value.length > 0 ? value : undefined);
    };
    const onData = (chunk: Buffer | string) => {
      buffer += chunk.toString();
      const newline = buffer.indexOf('\n');
      if (newline !== -1) done(buffer.slice(0, newline).trim());
      else if (buffer.length > MAX_TOKEN_LINE) done(undefined);
    };
    const onEnd = () => done(buffer.trim());
    const timer = setTimeout(() => done(undefined), STDIN_TOKEN_TIMEOUT_MS);
    input.on('data', onData);
    input.on('end', onEnd);
  });
}

/**
 * One execution's model route: what the task gateway calls for `POST /v1/chat/completions`,
 * `/v1/responses` and `/v1/messages`. With `models:` in the worker's config (BYOLLM) requests go
 * from the worker straight to the team's provider through the model router and never touch the
 * control plane; otherwise they are relayed to the control plane's LLM gateway.
 *
 * It meters every call — requests, input and output tokens, from the usage each response settles
 * with — for the execution's `execution.finished.usage`.
 *
 * Invariants: a call never rejects (a failure is an error response in the client's format);
 * every call counts as a request, whatever its outcome. A request leaves only after the worker's
 * redactor ran over its body: the values of the variables the worker gives tasks (and their
 * encodings) never reach a provider or the control plane, even when the agent read them into
 * its conversation.
 */
import type { LlmProvider, LlmRequest, LlmResponse, LlmUsage } from '../../llm/types.js';
import { errorResponse } from '../../llm/errors.js';
import type { Usage } from '../../protocol/task.js';

/** The router of the worker's `models:` block (llm/router.ts); only `handle` is needed here. */
export interface ModelHandler {
  handle(request: LlmRequest): Promise<LlmResponse>;
}

/** After the task ended, how long to wait for usage of streams still settling. */
const SETTLE_TIMEOUT_MS = 2_000;

export class ExecutionModelRoute {
  private totals: Usage = { input_tokens: 0, output_tokens: 0, requests: 0 };
  private readonly pending = new Set<Promise<void>>();
  /** In-flight calls, aborted together when the execution ends. */
  private readonly inFlight = new Set<AbortController>();
  private closed = false;

  constructor(
    /** BYOLLM router, or the control-plane provider of this execution. */
    private readonly target: ModelHandler | LlmProvider,
    readonly route: 'byollm' | 'control-plane',
    /** The worker's redactor over every string of a body, keeping its shape (identity by default). */
    private readonly redact: <T>(body: T) => T = (body) => body,
    /** Totals so far (an execution resumed by a restarted worker), and a hook told of every change. */
    persistence: { initial?: Usage; onChange?: (totals: Usage) => void } = {},
  ) {
    if (persistence.initial) this.totals = { ...persistence.initial };
    this.onChange = persistence.onChange;
  }

  private readonly onChange: ((totals: Usage) => void) | undefined;

  /** The task gateway's `llm` option. */
  handle = async (request: LlmRequest): Promise<LlmResponse> => {
    this.totals.requests += 1;
    let response: LlmResponse;
    try {
      response = await this.target.handle({ ...request, body: this.redact(request.body) });
    } catch (err) {
      return errorResponse(request.api, 500, `the worker could not route the model request: ${(err as Error).message}`);
    }
    const settled = response.usage.then(
      (usage) => this.add(usage),
      () => undefined,
    );
    this.pending.add(settled);
    void settled.finally(() => this.pending.delete(settled));
    return response;
  };

  private add(usage: LlmUsage | null): void {
    if (usage) {
      this.totals.input_tokens += usage.input_tokens;
      this.totals.output_tokens += usage.output_tokens;
    }
    this.onChange?.(this.usage);
  }

  /** The execution ended (or was stopped): abort every call still running, refuse new ones. */
  close(reason = 'the execution ended'): void {
    this.closed = true;
    for (const abort of this.inFlight) abort.abort(new Error(reason));
    this.inFlight.clear();
  }

  /** Totals so far. */
  get usage(): Usage {
    return { ...this.totals };
  }

  /** Totals once the usage of every call made so far settled (or after a short wait). */
  async finalUsage(timeoutMs = SETTLE_TIMEOUT_MS): Promise<Usage> {
    if (this.pending.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all([...this.pending]), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    return this.usage;
  }
}

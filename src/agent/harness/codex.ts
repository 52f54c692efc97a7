/**
 * The `codex` harness: runs the Codex CLI (`codex exec`) non-interactively in the working
 * directory with a model provider that points at the model proxy, and turns its `--json` event
 * lines into transcript events.
 *
 * Flags and environment, and why:
 * - `exec --json`: one JSON event per line (thread/turn started, items started/completed —
 *   agent messages, command executions, file changes —, turn completed with usage).
 * - `--dangerously-bypass-approvals-and-sandbox`: no approval prompts and no Codex sandbox — the
 *   task environment is already the sandbox (Codex's own landlock/seccomp sandbox often cannot
 *   start inside a container anyway).
 * - `--skip-git-repo-check`: a task may work outside a git repository; `--ephemeral`: no session
 *   files; `-C WORKDIR`: the working root.
 * - `-c model_provider=airlock` and `model_providers.airlock.{name,base_url,env_key,wire_api}`:
 *   base URL `<proxy>/v1`, the Responses wire API (the only one current Codex speaks), its key
 *   from a variable holding a dummy (the proxy adds the task token).
 * - `-c analytics.enabled=false --disable plugins --disable remote_plugin`: without them Codex
 *   calls home at start (analytics, plugin sync from GitHub/ChatGPT);
 *   `check_for_update_on_startup=false` for the same reason.
 * - `--disable multi_agent -c web_search="disabled"`: the sub-agent tools come as a `namespace`
 *   tool and web search as a hosted tool, neither of which a non-OpenAI provider behind the
 *   worker's router can take; without them every tool is a plain function tool, so Codex works
 *   through the router's translation too (tested against a Messages-API provider).
 * - `CODEX_HOME` under the execution's HOME: never the host user's config or login.
 * - `--` before the prompt, so a prompt starting with `-` is not taken for a flag.
 */
import path from 'node:path';
import type { HarnessContext, HarnessDefinition, HarnessResult } from './harness.js';
import { DUMMY_API_KEY, clip, clipJson, runCliAgent, type CliAgentAdapter, type CliSetup } from './cli-agent.js';

/** The CLI's command name; the task image must have it on PATH (npm i -g @openai/codex). */
export const CODEX_COMMAND = 'codex';
/** The provider id in Codex's config; its key variable holds only a dummy. */
const PROVIDER_ID = 'airlock';
const KEY_ENV = 'AIRLOCK_MODEL_PROXY_KEY';

export function codexHarness(): HarnessDefinition {
  return {
    name: 'codex',
    run: (context: HarnessContext): Promise<HarnessResult> => runCliAgent(context, new CodexAdapter(context)),
  };
}

/** A TOML string for `-c key=value` (JSON string syntax is valid TOML for basic strings). */
const toml = (value: string) => JSON.stringify(value);

type Json = Record<string, unknown>;

class CodexAdapter implements CliAgentAdapter {
  readonly name = 'codex';
  readonly installHint = `the Codex CLI on PATH as \`${CODEX_COMMAND}\` (npm install -g @openai/codex)`;
  private lastMessage: string | null = null;
  private failure: string | null = null;
  private lastError: string | null = null;
  private tokens = { input_tokens: 0, output_tokens: 0 };
  private sawUsage = false;

  constructor(private readonly context: HarnessContext) {}

  build({ proxy, prompt, env }: CliSetup) {
    const model = this.context.spec.model ?? undefined;
    const args = [
      'exec',
      '--json',
      '--dangerously-bypass-approvals-and-sandbox',
      '--skip-git-repo-check',
      '--ephemeral',
      '-C',
      this.context.workdir,
      '-c',
      `model_provider=${toml(PROVIDER_ID)}`,
      '-c',
      `model_providers.${PROVIDER_ID}.name=${toml('Airlock task gateway')}`,
      '-c',
      `model_providers.${PROVIDER_ID}.base_url=${toml(`${proxy.url}/v1`)}`,
      '-c',
      `model_providers.${PROVIDER_ID}.env_key=${toml(KEY_ENV)}`,
      '-c',
      `model_providers.${PROVIDER_ID}.wire_api=${toml('responses')}`,
      '-c',
      'analytics.enabled=false',
      '-c',
      'check_for_update_on_startup=false',
      '--disable',
      'plugins',
      '--disable',
      'remote_plugin',
      '--disable',
      'multi_agent',
      '-c',
      'web_search="disabled"',
    ];
    if (model) args.push('-m', model);
    args.push('--', prompt);
    const codexHome = path.join(env.HOME!, '.codex');
    const childEnv: NodeJS.ProcessEnv = { ...env, [KEY_ENV]: DUMMY_API_KEY, CODEX_HOME: codexHome };
    delete childEnv.OPENAI_BASE_URL;
    return { command: CODEX_COMMAND, args, env: childEnv, dirs: [codexHome] };
  }

  onLine(line: string, emit: HarnessContext['emit']): boolean {
    const event = JSON.parse(line) as Json;
    if (typeof event !== 'object' || event === null || typeof event.type !== 'string') return false;
    const base = { agent: this.name };
    switch (event.type) {
      case 'thread.started':
        emit('status', { ...base, type: 'harness_started', session_id: event.thread_id ?? null, model: this.context.spec.model ?? null, text: `Codex: model ${this.context.spec.model ?? 'default'}` });
        return true;
      case 'turn.started':
        return true;
      case 'turn.completed': {
        const usage = (event.usage ?? {}) as Record<string, unknown>;
        const n = (name: string) => (typeof usage[name] === 'number' ? usage[name] : 0);
        this.tokens = { input_tokens: this.tokens.input_tokens + n('input_tokens'), output_tokens: this.tokens.output_tokens + n('output_tokens') };
        this.sawUsage = true;
        return true;
      }
      case 'turn.failed':
      case 'error': {
        // `error` may be transient (Codex retries a dropped stream); `turn.failed` ends the run.
        const error = (event.error ?? event) as Json;
        const message = typeof error.message === 'string' ? error.message : JSON.stringify(error);
        this.lastError = message;
        if (event.type === 'turn.failed') this.failure = message;
        emit('error', { ...base, type: 'agent_error', message: clip(message, 4000) });
        return true;
      }
      case 'item.started':
      case 'item.updated':
      case 'item.completed':
        this.onItem(event.type, (event.item ?? {}) as Json, emit);
        return true;
      default:
        emit('status', { ...base, type: event.type, data: clipJson(event, 4096) });
        return true;
    }
  }

  private onItem(phase: string, item: Json, emit: HarnessContext['emit']): void {
    const base = { agent: this.name };
    const id = item.id ?? null;
    switch (item.type) {
      case 'agent_message':
        if (phase !== 'item.completed' || typeof item.text !== 'string') return;
        this.lastMessage = item.text;
        emit('output', { ...base, type: 'assistant', stream: 'stdout', text: `${clip(item.text)}\n` });
        return;
      case 'reasoning':
        if (phase === 'item.completed' && typeof item.text === 'string') emit('status', { ...base, type: 'thinking', text: clip(item.text) });
        return;
      case 'command_execution':
        if (phase === 'item.started') emit('status', { ...base, type: 'tool_call', id, name: 'command', arguments: { command: item.command ?? null } });
        else if (phase === 'item.completed') {
          const output = typeof item.aggregated_output === 'string' ? item.aggregated_output : '';
          emit('status', { ...base, type: 'tool_result', id, name: 'command', ok: item.exit_code === 0, output: clip(output), output_chars: output.length, meta: { exitCode: item.exit_code ?? null } });
        }
        return;
      case 'file_change':
        if (phase === 'item.completed') emit('status', { ...base, type: 'tool_result', id, name: 'file_change', ok: item.status !== 'failed', output: clipJson(item.changes ?? []) });
        return;
      case 'mcp_tool_call':
      case 'web_search':
        if (phase === 'item.started') emit('status', { ...base, type: 'tool_call', id, name: item.type, arguments: clipJson(item) });
        else if (phase === 'item.completed') emit('status', { ...base, type: 'tool_result', id, name: item.type, ok: item.status !== 'failed', output: clipJson(item) });
        return;
      case 'error':
        // Codex reports warnings as error items (e.g. "model metadata not found"); the run goes on.
        if (phase === 'item.completed') emit('status', { ...base, type: 'notice', text: clip(typeof item.message === 'string' ? item.message : JSON.stringify(item)) });
        return;
      default:
        if (phase === 'item.completed') emit('status', { ...base, type: typeof item.type === 'string' ? item.type : 'item', data: clipJson(item, 4096) });
    }
  }

  summary(): string | null {
    return this.lastMessage ?? this.lastError;
  }

  reportedError(): string | null {
    return this.failure;
  }

  usage(): { input_tokens: number; output_tokens: number } | null {
    return this.sawUsage ? this.tokens : null;
  }
}

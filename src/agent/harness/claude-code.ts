/**
 * The `claude-code` harness: runs the Claude Code CLI (`claude -p`) non-interactively in the
 * working directory, its Anthropic base URL pointed at the model proxy, and turns its
 * `stream-json` output into transcript events.
 *
 * Flags and environment, and why:
 * - `-p PROMPT --output-format stream-json --verbose`: one JSON object per line (init, each
 *   assistant content block, each tool result, the final result); `--verbose` is required for
 *   stream-json in print mode.
 * - `--permission-mode bypassPermissions`: edit files and run commands without asking — the task
 *   environment is the sandbox. `IS_SANDBOX=1` tells the CLI so; without it the CLI refuses this
 *   mode when running as root (common in containers).
 * - `--no-session-persistence`: nothing to resume later; no session files under HOME.
 * - `ANTHROPIC_BASE_URL` = the proxy, `ANTHROPIC_API_KEY` = a dummy (the proxy adds the token).
 * - Telemetry, error reporting, auto-update, and "non-essential" traffic and model calls (such as
 *   session-title generation) are off: a task environment may have no internet, and nothing
 *   should leave it except through the gateway. Experimental API betas are off too
 *   (`CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS`): fewer provider-specific features to route.
 * - `CLAUDE_CONFIG_DIR` under the execution's HOME: never the host user's settings.
 * - With a task model, every model slot (main, small/fast, subagents) uses it.
 */
import path from 'node:path';
import type { HarnessContext, HarnessDefinition, HarnessResult } from './harness.js';
import { DUMMY_API_KEY, clip, clipJson, runCliAgent, type CliAgentAdapter } from './cli-agent.js';

/** The CLI's command name; the task image must have it on PATH (npm i -g @anthropic-ai/claude-code). */
export const CLAUDE_COMMAND = 'claude';

/** Environment that keeps the CLI quiet and offline except for model calls. */
export const CLAUDE_QUIET_ENV: Readonly<Record<string, string>> = {
  IS_SANDBOX: '1',
  DISABLE_TELEMETRY: '1',
  DISABLE_ERROR_REPORTING: '1',
  DISABLE_AUTOUPDATER: '1',
  DISABLE_BUG_COMMAND: '1',
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
  DISABLE_NON_ESSENTIAL_MODEL_CALLS: '1',
  CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS: '1',
};

/** Model variables Claude Code reads for its different model slots. */
const MODEL_SLOTS = ['ANTHROPIC_MODEL', 'ANTHROPIC_SMALL_FAST_MODEL', 'ANTHROPIC_DEFAULT_OPUS_MODEL', 'ANTHROPIC_DEFAULT_SONNET_MODEL', 'ANTHROPIC_DEFAULT_HAIKU_MODEL', 'CLAUDE_CODE_SUBAGENT_MODEL'];

export function claudeCodeHarness(): HarnessDefinition {
  return {
    name: 'claude-code',
    run: (context: HarnessContext): Promise<HarnessResult> => runCliAgent(context, new ClaudeCodeAdapter(context)),
  };
}

type Json = Record<string, unknown>;

class ClaudeCodeAdapter implements CliAgentAdapter {
  readonly name = 'claude-code';
  readonly installHint = `the Claude Code CLI on PATH as \`${CLAUDE_COMMAND}\` (npm install -g @anthropic-ai/claude-code)`;
  private result: Json | undefined;
  /** Tool names by call id, so a result event can say which tool it belongs to. */
  private readonly toolNames = new Map<string, string>();

  constructor(private readonly context: HarnessContext) {}

  build({ proxy, prompt, env }: Parameters<CliAgentAdapter['build']>[0]) {
    const model = this.context.spec.model ?? undefined;
    const childEnv: NodeJS.ProcessEnv = {
      ...env,
      ...CLAUDE_QUIET_ENV,
      ANTHROPIC_BASE_URL: proxy.url,
      ANTHROPIC_API_KEY: DUMMY_API_KEY,
      CLAUDE_CONFIG_DIR: path.join(env.HOME!, '.claude'),
    };
    for (const slot of MODEL_SLOTS) {
      if (model) childEnv[slot] = model;
      else delete childEnv[slot];
    }
    const args = ['-p', prompt, '--output-format', 'stream-json', '--verbose', '--permission-mode', 'bypassPermissions', '--no-session-persistence'];
    if (model) args.push('--model', model);
    return { command: CLAUDE_COMMAND, args, env: childEnv };
  }

  onLine(line: string, emit: HarnessContext['emit']): boolean {
    const event = JSON.parse(line) as Json;
    if (typeof event !== 'object' || event === null || typeof event.type !== 'string') return false;
    const base = { agent: this.name };
    switch (event.type) {
      case 'system':
        if (event.subtype === 'init') {
          emit('status', { ...base, type: 'harness_started', model: event.model ?? null, session_id: event.session_id ?? null, text: `Claude Code: model ${typeof event.model === 'string' ? event.model : 'default'}` });
        }
        return true;
      case 'assistant':
      case 'user': {
        const message = event.message as { content?: unknown } | undefined;
        const content = Array.isArray(message?.content) ? (message.content as Json[]) : typeof message?.content === 'string' ? [{ type: 'text', text: message.content }] : [];
        for (const block of content) {
          if (block.type === 'text' && typeof block.text === 'string' && event.type === 'assistant') {
            emit('output', { ...base, type: 'assistant', stream: 'stdout', text: `${clip(block.text)}\n` });
          } else if (block.type === 'thinking' && typeof block.thinking === 'string') {
            emit('status', { ...base, type: 'thinking', text: clip(block.thinking) });
          } else if (block.type === 'tool_use') {
            if (typeof block.id === 'string' && typeof block.name === 'string') this.toolNames.set(block.id, block.name);
            emit('status', { ...base, type: 'tool_call', id: block.id ?? null, name: block.name ?? null, arguments: clipJson(block.input) });
          } else if (block.type === 'tool_result') {
            const id = typeof block.tool_use_id === 'string' ? block.tool_use_id : null;
            const output = toolResultText(block.content);
            emit('status', { ...base, type: 'tool_result', id, name: (id && this.toolNames.get(id)) ?? null, ok: block.is_error !== true, output: clip(output), output_chars: output.length });
          }
        }
        return true;
      }
      case 'result':
        this.result = event;
        return true;
      default:
        // Other stream-json events (hooks, partial messages, rate-limit notes): kept, compactly.
        emit('status', { ...base, type: event.type, subtype: event.subtype ?? null, data: clipJson(event, 4096) });
        return true;
    }
  }

  summary(): string | null {
    return typeof this.result?.result === 'string' ? this.result.result : null;
  }

  reportedError(): string | null {
    if (!this.result || this.result.is_error !== true) return null;
    const text = typeof this.result.result === 'string' && this.result.result !== '' ? this.result.result : typeof this.result.subtype === 'string' ? this.result.subtype : 'error';
    return clip(text, 2000);
  }

  usage(): { input_tokens: number; output_tokens: number } | null {
    const usage = this.result?.usage as Record<string, unknown> | undefined;
    if (!usage) return null;
    const n = (name: string) => (typeof usage[name] === 'number' ? usage[name] : 0);
    return { input_tokens: n('input_tokens') + n('cache_creation_input_tokens') + n('cache_read_input_tokens'), output_tokens: n('output_tokens') };
  }
}

function toolResultText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((part: Json) => (part.type === 'text' && typeof part.text === 'string' ? part.text : `[${String(part.type)}]`)).join('\n');
  }
  return JSON.stringify(content) ?? '';
}

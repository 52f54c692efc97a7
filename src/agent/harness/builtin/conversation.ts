/**
 * The built-in harness's conversation and its context management. The conversation is the list
 * of chat messages sent on every model call; its size is estimated in tokens — characters scaled
 * by the ratio the last model call's usage revealed (input tokens / characters sent), four
 * characters a token before any call — and kept under a share of the context limit.
 *
 * Invariants:
 * - `fit` never fails: first the oldest tool results are replaced by a short marker (the most
 *   recent ones stay whole), then all but the latest turn's, then whole oldest turns after the first user message are dropped
 *   (an assistant message with its tool results goes as one, so every tool result still follows
 *   its call), and a note says so; the system prompt, the first user message (the task) and the
 *   latest turn always stay.
 * - Nothing is trimmed below the trim threshold, so a small conversation is sent as it was built.
 */
import type { ChatMessage } from './model-client.js';

/** Trim when the estimate passes this share of the context limit… */
export const TRIM_AT = 0.8;
/** …down to this share, so trimming does not happen again on the very next turn. */
export const TRIM_TO = 0.6;
/** Tool results always kept whole (the latest ones: what the model is working from). */
export const KEEP_RECENT_TOOL_RESULTS = 4;
const DEFAULT_CHARS_PER_TOKEN = 4;

export interface FitReport {
  /** Tool results replaced by a marker. */
  trimmedResults: number;
  /** Messages dropped with whole turns. */
  droppedMessages: number;
  tokensBefore: number;
  tokensAfter: number;
}

export class Conversation {
  readonly messages: ChatMessage[] = [];
  /** Tokens per character, learnt from the last usage. */
  private tokensPerChar = 1 / DEFAULT_CHARS_PER_TOKEN;
  /** Tool names by call id, for the trim markers. */
  private readonly toolNames = new Map<string, string>();
  private droppedTotal = 0;
  /** Index of the "earlier turns were dropped" note, once there is one. */
  private noteIndex = -1;

  /**
   * @param overheadChars characters sent with every call besides the messages (the tool
   *   definitions), so the learnt ratio is not skewed by them.
   */
  constructor(
    system: string,
    task: string,
    private readonly overheadChars = 0,
  ) {
    this.messages.push({ role: 'system', content: system }, { role: 'user', content: task });
  }

  push(message: ChatMessage): void {
    if (message.role === 'assistant') for (const call of message.tool_calls ?? []) this.toolNames.set(call.id, call.function.name);
    this.messages.push(message);
  }

  /** Learn the token/character ratio from a model call's reported input tokens. */
  calibrate(inputTokens: number, charsSent: number): void {
    if (inputTokens > 0 && charsSent > 0) this.tokensPerChar = inputTokens / charsSent;
  }

  /** Characters sent with a call: the messages and the overhead. */
  chars(): number {
    let total = this.overheadChars;
    for (const message of this.messages) total += messageChars(message);
    return total;
  }

  estimateTokens(): number {
    return Math.ceil(this.chars() * this.tokensPerChar);
  }

  /** Bring the estimate under TRIM_TO × limit when it passed TRIM_AT × limit. Returns what was done, or undefined. */
  fit(limitTokens: number): FitReport | undefined {
    if (this.estimateTokens() <= limitTokens * TRIM_AT) return undefined;
    return this.shrink(limitTokens * TRIM_TO);
  }

  /** Bring the estimate under `target` tokens whatever it is now (after the model refused the size). */
  shrink(target: number): FitReport {
    const before = this.estimateTokens();
    let trimmedResults = this.trimToolResults(target, KEEP_RECENT_TOOL_RESULTS);
    // Then every result but the latest turn's: the model's own messages say what those found.
    trimmedResults += this.trimToolResults(target, this.latestTurnToolResults());
    const droppedMessages = this.dropOldTurns(target);
    // Still too big (one huge latest turn): trim even the latest tool results.
    if (this.estimateTokens() > target) trimmedResults += this.trimToolResults(target, 0);
    return { trimmedResults, droppedMessages, tokensBefore: before, tokensAfter: this.estimateTokens() };
  }

  private latestTurnToolResults(): number {
    let count = 0;
    for (let i = this.messages.length - 1; i >= 0 && this.messages[i]!.role !== 'assistant'; i--) if (this.messages[i]!.role === 'tool') count++;
    return count;
  }

  private trimToolResults(target: number, keepRecent: number): number {
    const toolIndexes = this.messages.flatMap((message, index) => (message.role === 'tool' ? [index] : []));
    const candidates = toolIndexes.slice(0, Math.max(0, toolIndexes.length - keepRecent));
    let trimmed = 0;
    for (const index of candidates) {
      if (this.estimateTokens() <= target) break;
      const message = this.messages[index] as Extract<ChatMessage, { role: 'tool' }>;
      if (message.content.startsWith('[output of ')) continue; // already a marker
      const name = this.toolNames.get(message.tool_call_id) ?? 'tool';
      this.messages[index] = { ...message, content: `[output of ${name} trimmed to fit the context: ${message.content.length} chars]` };
      trimmed++;
    }
    return trimmed;
  }

  /** Drop whole turns (an assistant message and what follows it up to the next one) after the task. */
  private dropOldTurns(target: number): number {
    let dropped = 0;
    for (;;) {
      if (this.estimateTokens() <= target) break;
      // The first turn after the task (and after the note, when there is one).
      const start = this.noteIndex >= 0 ? this.noteIndex + 1 : 2;
      const firstAssistant = this.messages.findIndex((m, i) => i >= start && m.role === 'assistant');
      if (firstAssistant < 0) break;
      let end = firstAssistant + 1;
      while (end < this.messages.length && this.messages[end]!.role !== 'assistant') end++;
      if (end >= this.messages.length) break; // that is the latest turn: keep it
      const count = end - start;
      this.messages.splice(start, count);
      dropped += count;
      this.droppedTotal += count;
      const note: ChatMessage = {
        role: 'user',
        content: `[${this.droppedTotal} earlier messages of this conversation were removed to fit the context window. The files in the working directory still hold that work: inspect them rather than assume.]`,
      };
      if (this.noteIndex >= 0) this.messages[this.noteIndex] = note;
      else {
        this.messages.splice(2, 0, note);
        this.noteIndex = 2;
      }
    }
    return dropped;
  }
}

function messageChars(message: ChatMessage): number {
  let total = 16; // role and framing
  if (message.content) total += message.content.length;
  if (message.role === 'assistant') for (const call of message.tool_calls ?? []) total += call.function.name.length + call.function.arguments.length + call.id.length + 16;
  return total;
}

/**
 * The usage tap: reads a response in one of the three APIs on the side — SSE events as they
 * pass, or the whole JSON body — and keeps the token counts it reports and whether the stream
 * reached its proper end. It never changes what it reads.
 * Invariant: input tokens include cached prompt tokens (Anthropic reports them apart), so the
 * same conversation counts the same whichever API answered it.
 */
import type { LlmApi, LlmUsage } from './types.js';
import { isRecord, tryJson, type SseEvent } from './sse.js';

const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0);

export class UsageTap {
  private input: number | undefined;
  private output: number | undefined;
  private model: string | undefined;
  /** The stream reached its terminal event (or an error event): nothing is missing. */
  finished = false;
  /**
   * A Chat Completions stream sent its finish_reason: some OpenAI-compatible servers end there
   * without `[DONE]`, and a clean end after it is complete enough not to report a failure.
   */
  sawFinish = false;
  /** The stream carried an error event. */
  failed = false;
  /** Next `sequence_number` of a Responses stream, for an error event we may have to add. */
  nextSequence = 0;

  constructor(private readonly api: LlmApi) {}

  get usage(): LlmUsage | null {
    if (this.input === undefined && this.output === undefined) return null;
    return { input_tokens: this.input ?? 0, output_tokens: this.output ?? 0, ...(this.model === undefined ? {} : { model: this.model }) };
  }

  /** Observe one SSE event; returns the parsed data (undefined when not JSON). */
  observeEvent(event: SseEvent): unknown {
    if (this.api === 'chat' && event.data.trim() === '[DONE]') {
      this.finished = true;
      return undefined;
    }
    const data = tryJson(event.data);
    if (!isRecord(data)) return data;
    if (this.api === 'chat') this.observeChatChunk(data);
    else if (this.api === 'responses') this.observeResponsesEvent(data);
    else this.observeMessagesEvent(data);
    return data;
  }

  /** Observe a whole non-streaming body. */
  observeBody(body: unknown): void {
    if (!isRecord(body)) return;
    if (typeof body.model === 'string') this.model = body.model;
    if (this.api === 'chat') this.takeOpenAi(body.usage);
    else if (this.api === 'responses') this.takeResponses(body.usage);
    else this.takeAnthropic(body.usage);
  }

  private observeChatChunk(chunk: Record<string, unknown>): void {
    if (isRecord(chunk.error)) {
      this.failed = this.finished = true;
      return;
    }
    if (typeof chunk.model === 'string') this.model = chunk.model;
    if (Array.isArray(chunk.choices) && chunk.choices.some((c) => isRecord(c) && typeof c.finish_reason === 'string')) this.sawFinish = true;
    this.takeOpenAi(chunk.usage);
  }

  private observeResponsesEvent(event: Record<string, unknown>): void {
    if (typeof event.sequence_number === 'number') this.nextSequence = event.sequence_number + 1;
    const type = event.type;
    if (type === 'error' || type === 'response.failed') this.failed = true;
    if (type === 'error' || type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') this.finished = true;
    if (isRecord(event.response)) {
      if (typeof event.response.model === 'string') this.model = event.response.model;
      this.takeResponses(event.response.usage);
    }
  }

  private observeMessagesEvent(event: Record<string, unknown>): void {
    const type = event.type;
    if (type === 'error') this.failed = true;
    if (type === 'message_stop' || type === 'error') this.finished = true;
    if (type === 'message_start' && isRecord(event.message)) {
      if (typeof event.message.model === 'string') this.model = event.message.model;
      this.takeAnthropic(event.message.usage);
    }
    if (type === 'message_delta') this.takeAnthropic(event.usage);
  }

  private takeOpenAi(usage: unknown): void {
    if (!isRecord(usage)) return;
    if (usage.prompt_tokens !== undefined) this.input = count(usage.prompt_tokens);
    if (usage.completion_tokens !== undefined) this.output = count(usage.completion_tokens);
  }

  private takeResponses(usage: unknown): void {
    if (!isRecord(usage)) return;
    if (usage.input_tokens !== undefined) this.input = count(usage.input_tokens);
    if (usage.output_tokens !== undefined) this.output = count(usage.output_tokens);
  }

  /** message_start carries input (and a placeholder output); message_delta the cumulative output. */
  private takeAnthropic(usage: unknown): void {
    if (!isRecord(usage)) return;
    if (usage.input_tokens !== undefined || usage.cache_read_input_tokens !== undefined || usage.cache_creation_input_tokens !== undefined) {
      this.input = count(usage.input_tokens) + count(usage.cache_read_input_tokens) + count(usage.cache_creation_input_tokens);
    }
    if (usage.output_tokens !== undefined) this.output = count(usage.output_tokens);
  }
}

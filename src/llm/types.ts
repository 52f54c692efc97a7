/**
 * The model-routing port shared by the worker (task gateway, BYOLLM) and the server (LLM
 * gateway). A client speaks one of three wire APIs; a provider answers in the client's API,
 * passing streams through untouched when the formats match and translating when they differ.
 *
 * Invariants:
 * - A provider never throws for a request it could not serve: it answers with an error response
 *   in the client's own API format (status, body), so every client sees errors it understands.
 * - `usage` always settles (to null when the provider reported none), once the body ended or
 *   failed; it never rejects.
 * - Nothing here logs or stores a request or response body.
 */

/** The client's wire API: OpenAI Chat Completions, OpenAI Responses, Anthropic Messages. */
export type LlmApi = 'chat' | 'responses' | 'messages';

export const LLM_API_PATHS: { readonly [api in LlmApi]: string } = {
  chat: '/v1/chat/completions',
  responses: '/v1/responses',
  messages: '/v1/messages',
};

export interface LlmRequest {
  api: LlmApi;
  /** The parsed JSON body exactly as the client sent it. */
  body: Record<string, unknown>;
  /**
   * Client headers worth forwarding (lower-case names): `anthropic-version`, `anthropic-beta`,
   * `openai-beta`. Never credentials: the provider adds its own.
   */
  headers: Record<string, string>;
  /** Aborted when the client went away or the execution was cancelled. */
  signal: AbortSignal;
}

export interface LlmUsage {
  input_tokens: number;
  output_tokens: number;
  /** The model that answered, when the provider said. */
  model?: string;
}

export interface LlmResponse {
  status: number;
  /** Response headers for the client (content-type at least); no hop-by-hop headers. */
  headers: Record<string, string>;
  /** The body in the client's API format: SSE bytes when streaming, JSON otherwise. */
  body: AsyncIterable<Uint8Array>;
  /** Token usage, settled once the body was consumed (or failed). */
  usage: Promise<LlmUsage | null>;
}

export interface LlmProvider {
  /** The provider's configured name (`models.providers.<name>`). */
  readonly name: string;
  readonly type: ProviderType;
  handle(request: LlmRequest): Promise<LlmResponse>;
}

export const PROVIDER_TYPES = ['openai', 'openai-compatible', 'azure-openai', 'anthropic', 'bedrock', 'vertex'] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

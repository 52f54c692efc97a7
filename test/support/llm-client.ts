// Helpers for model-routing tests: call an LlmRequest handler, read the answer as text, SSE
// events or JSON. No assertions here.
import type { LlmApi, LlmRequest, LlmResponse } from '../../src/llm/index.js';

export function llmRequest(api: LlmApi, body: Record<string, unknown>, options: { headers?: Record<string, string>; signal?: AbortSignal } = {}): LlmRequest {
  return { api, body, headers: options.headers ?? {}, signal: options.signal ?? new AbortController().signal };
}

export async function readAll(response: LlmResponse): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of response.body) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

export interface SseRecord {
  event: string | undefined;
  data: string;
}

/** A deliberately simple, strict SSE reader: blocks split on blank lines, `event:` and `data:` lines only. */
export function parseSseText(text: string): SseRecord[] {
  return text
    .split(/\n\n/)
    .filter((block) => block.trim() !== '')
    .flatMap((block) => {
      let event: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
        else if (line.startsWith(':')) continue;
        else throw new Error(`not an SSE line: ${JSON.stringify(line)}`);
      }
      // A block of comments only (keep-alive) dispatches nothing.
      return data.length === 0 ? [] : [{ event, data: data.join('\n') }];
    });
}

/**
 * A minimal server-sent events reader over fetch, for tests: yields {id, event, data} as they
 * arrive, so a test sees exactly what a browser or `airlock task logs -f` would.
 */
export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

export async function* readSse(url: string, init: { key: string; lastEventId?: string; signal?: AbortSignal }): AsyncGenerator<SseMessage> {
  const response = await fetch(url, {
    headers: {
      authorization: `Bearer ${init.key}`,
      accept: 'text/event-stream',
      ...(init.lastEventId ? { 'last-event-id': init.lastEventId } : {}),
    },
    signal: init.signal,
  });
  if (!response.ok || !response.body) throw new Error(`SSE request failed: ${response.status} ${await response.text()}`);
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let boundary: number;
    while ((boundary = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      let id: string | undefined;
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') id = value;
        else if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length > 0 || id !== undefined) yield { id, event, data: data.join('\n') };
    }
  }
}

/** Follow a task's transcript until the server says `end`; returns every message. */
export async function collectSse(url: string, key: string, options: { lastEventId?: string; timeoutMs?: number } = {}): Promise<SseMessage[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 20_000);
  const messages: SseMessage[] = [];
  try {
    for await (const message of readSse(url, { key, lastEventId: options.lastEventId, signal: controller.signal })) {
      messages.push(message);
      if (message.event === 'end') break;
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return messages;
}

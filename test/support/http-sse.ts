/**
 * A minimal server-sent-events reader for tests, independent of the CLI's client so a bug in
 * one cannot hide a bug in the other. Parses frames per the EventSource rules we rely on
 * (`id`, `event`, `data`, comments) and lets a test await them one by one.
 */

export interface SseFrame {
  id?: string;
  event: string;
  data: string;
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** The next frame (comments excluded), or undefined when the stream ended. */
  next(timeoutMs?: number): Promise<SseFrame | undefined>;
  /** Frames until (and including) `event: end`, or until the stream closes. */
  readToEnd(timeoutMs?: number): Promise<SseFrame[]>;
  comments: string[];
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string>): Promise<SseStream> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  const frames: SseFrame[] = [];
  const comments: string[] = [];
  const waiters: Array<() => void> = [];
  let ended = false;
  const wake = () => waiters.splice(0).forEach((w) => w());

  if (response.body && response.headers.get('content-type')?.startsWith('text/event-stream')) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let current: Partial<SseFrame> & { dataLines: string[] } = { dataLines: [] };
    void (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let newline: number;
          while ((newline = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, newline).replace(/\r$/, '');
            buffer = buffer.slice(newline + 1);
            if (line === '') {
              if (current.dataLines.length > 0) {
                frames.push({ ...(current.id !== undefined ? { id: current.id } : {}), event: current.event ?? 'message', data: current.dataLines.join('\n') });
                wake();
              }
              current = { dataLines: [] };
            } else if (line.startsWith(':')) {
              comments.push(line.slice(1).trim());
              wake();
            } else {
              const colon = line.indexOf(':');
              const field = colon < 0 ? line : line.slice(0, colon);
              const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
              if (field === 'data') current.dataLines.push(value);
              else if (field === 'id') current.id = value;
              else if (field === 'event') current.event = value;
            }
          }
        }
      } catch {
        // aborted by close()
      } finally {
        ended = true;
        wake();
      }
    })();
  } else {
    ended = true;
  }

  let cursor = 0;
  const next = async (timeoutMs = 5000): Promise<SseFrame | undefined> => {
    const deadline = Date.now() + timeoutMs;
    while (cursor >= frames.length) {
      if (ended) return undefined;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no SSE frame within ${timeoutMs} ms (got ${frames.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return frames[cursor++];
  };

  return {
    status: response.status,
    headers: response.headers,
    comments,
    next,
    async readToEnd(timeoutMs = 5000) {
      const out: SseFrame[] = [];
      for (;;) {
        const frame = await next(timeoutMs);
        if (!frame) return out;
        out.push(frame);
        if (frame.event === 'end') return out;
      }
    },
    close() {
      controller.abort();
    },
  };
}

/** Poll until `check` holds (for state that changes asynchronously, e.g. follower counts). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

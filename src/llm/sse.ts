/**
 * Server-sent events, incrementally: a parser fed arbitrary byte chunks (events may straddle
 * chunks, lines may end in \n, \r\n or \r) and an encoder. Used by the usage tap (pass-through)
 * and by translation. Invariant: `raw` of a parsed event is the exact text of its block including
 * the blank line that ended it, so a filter can re-emit the events it keeps byte for byte.
 */

export interface SseEvent {
  /** The `event:` field; undefined for formats that send bare `data:` lines. */
  event?: string | undefined;
  data: string;
}

export interface ParsedSseEvent extends SseEvent {
  /** The exact text of the block, blank line included. */
  raw: string;
  /** False for a block without `data:` (a comment or keep-alive): nothing to dispatch, only `raw` to relay. */
  hasData: boolean;
}

export class SseParser {
  private readonly decoder = new TextDecoder();
  private buffer = '';

  /** Whether bytes of an unfinished event are waiting. */
  get pending(): boolean {
    return this.buffer !== '';
  }

  /** Feed bytes; returns the events completed by them. */
  push(chunk: Uint8Array): ParsedSseEvent[] {
    this.buffer += this.decoder.decode(chunk, { stream: true });
    return this.drain(false);
  }

  /** End of input: returns a last event not followed by a blank line, if any. */
  end(): ParsedSseEvent[] {
    this.buffer += this.decoder.decode();
    return this.drain(true);
  }

  private drain(final: boolean): ParsedSseEvent[] {
    const events: ParsedSseEvent[] = [];
    for (;;) {
      // A blank line ends an event. A \r at the very end may be the first half of \r\n: wait
      // for the next chunk before deciding (end() takes whatever is left).
      const match = /(\r\n|\r(?!\n|$)|\n)(\r\n|\r(?!$)|\n)/.exec(this.buffer);
      if (!match) break;
      const end = match.index + match[0].length;
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end);
      events.push(parseBlock(block));
    }
    if (final && this.buffer !== '') {
      events.push(parseBlock(this.buffer));
      this.buffer = '';
    }
    return events;
  }
}

function parseBlock(raw: string): ParsedSseEvent {
  let event: string | undefined;
  const data: string[] = [];
  let hasData = false;
  for (const line of raw.split(/\r\n|\r|\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') {
      data.push(value);
      hasData = true;
    }
  }
  return { event, data: data.join('\n'), raw, hasData };
}

/** The wire text of one event. */
export function encodeSse(event: SseEvent): string {
  const data = event.data
    .split('\n')
    .map((line) => `data: ${line}`)
    .join('\n');
  return `${event.event === undefined ? '' : `event: ${event.event}\n`}${data}\n\n`;
}

const encoder = new TextEncoder();
export const utf8 = (text: string): Uint8Array => encoder.encode(text);

/** Parse JSON, or undefined when it is not JSON. */
export function tryJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Bounded text: keeping the head and tail of output of any length in constant memory, and cutting
 * long text for the model with a marker that says how much is missing.
 *
 * Invariant: a `HeadTail` never holds more than `limit` characters (plus one chunk while trimming),
 * however much is pushed; `text()` is at most `limit` characters plus the marker line.
 */

export function omittedMarker(count: number): string {
  return `\n[… ${count} characters omitted …]\n`;
}

export class HeadTail {
  private head = '';
  private tail: string[] = [];
  private tailChars = 0;
  private total = 0;
  private readonly headLimit: number;
  private readonly tailLimit: number;

  constructor(limit: number) {
    this.headLimit = Math.ceil(limit / 2);
    this.tailLimit = Math.floor(limit / 2);
  }

  push(text: string): void {
    this.total += text.length;
    if (this.head.length < this.headLimit) {
      const room = this.headLimit - this.head.length;
      this.head += text.slice(0, room);
      text = text.slice(room);
      if (text.length === 0) return;
    }
    if (this.tailLimit === 0) return;
    if (text.length >= this.tailLimit) {
      this.tail = [text.slice(text.length - this.tailLimit)];
      this.tailChars = this.tailLimit;
      return;
    }
    this.tail.push(text);
    this.tailChars += text.length;
    while (this.tailChars > this.tailLimit) {
      const first = this.tail[0]!;
      const excess = this.tailChars - this.tailLimit;
      if (first.length <= excess) {
        this.tail.shift();
        this.tailChars -= first.length;
      } else {
        this.tail[0] = first.slice(excess);
        this.tailChars -= excess;
      }
    }
  }

  /** Characters pushed so far. */
  get totalChars(): number {
    return this.total;
  }

  /** Characters held in memory now. */
  get retainedChars(): number {
    return this.head.length + this.tailChars;
  }

  get truncated(): boolean {
    return this.total > this.retainedChars;
  }

  text(): string {
    const tail = this.tail.join('');
    const omitted = this.total - this.head.length - tail.length;
    return omitted > 0 ? this.head + omittedMarker(omitted) + tail : this.head + tail;
  }
}

/** `text` cut to `limit` characters, head and tail kept. */
export function truncateMiddle(text: string, limit: number): { text: string; truncated: boolean } {
  if (text.length <= limit) return { text, truncated: false };
  const buffer = new HeadTail(limit);
  buffer.push(text);
  return { text: buffer.text(), truncated: true };
}

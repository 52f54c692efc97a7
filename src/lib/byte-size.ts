/**
 * Sizes in Docker's syntax: a whole number of bytes, or a number with a binary unit — `512m`,
 * `2g`, `1.5G`, `2GiB`, `512MB`, `64k` (k, m, g, t are powers of 1024, as for
 * `docker run --memory`). Pure; no knowledge of who asks.
 *
 * Invariant: the text grammar is strict (no whitespace, no sign, no exponent, no hex), so what
 * this accepts every Docker-style parser accepts too.
 */

const UNIT_BYTES: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Digits with an optional fraction, then `b`, or a unit letter with an optional `b`/`ib`. */
const SIZE_TEXT = /^(\d+(?:\.\d+)?)(?:([kmgt])(?:i?b)?|b)?$/i;

/** Longer text is not a size anyone writes; refusing it early keeps hostile input cheap. */
const MAX_SIZE_TEXT_CHARS = 32;

/** Bytes, or undefined when `input` is not a size (or not a positive safe integer of bytes). */
export function parseByteSize(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input > 0 ? input : undefined;
  if (input.length > MAX_SIZE_TEXT_CHARS) return undefined;
  const match = SIZE_TEXT.exec(input);
  if (!match) return undefined;
  const unit = (match[2] ?? '').toLowerCase();
  const bytes = Math.floor(Number(match[1]) * UNIT_BYTES[unit]!);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** Bytes in the largest binary unit that keeps it readable: `6 MiB`, `1.5 GiB`, `1 TiB`. */
export function formatByteSize(bytes: number): string {
  for (const [unit, size] of [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(2))} ${unit}`;
  }
  return `${bytes} B`;
}

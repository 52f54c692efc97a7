/**
 * Splitting command output into event-sized pieces. An event's data is limited to
 * MAX_EVENT_DATA_BYTES of JSON (the gateway refuses more), so a piece is measured as it will be
 * sent: UTF-8 bytes of its JSON string escape, not characters.
 *
 * Invariants: pieces concatenate to the input; no piece splits a surrogate pair; every piece's
 * JSON-escaped UTF-8 size is at most `maxBytes` (for maxBytes ≥ 12, the widest escaped character).
 */

/** UTF-8 bytes of `code` (a UTF-16 code unit, or a whole code point) once JSON-escaped. */
function escapedBytes(text: string, i: number): { units: number; bytes: number } {
  const code = text.charCodeAt(i);
  if (code === 0x22 || code === 0x5c) return { units: 1, bytes: 2 }; // \" \\
  if (code < 0x20) return { units: 1, bytes: code === 0x08 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d ? 2 : 6 };
  if (code < 0x80) return { units: 1, bytes: 1 };
  if (code < 0x800) return { units: 1, bytes: 2 };
  if (code >= 0xd800 && code <= 0xdbff) {
    const next = text.charCodeAt(i + 1);
    if (next >= 0xdc00 && next <= 0xdfff) return { units: 2, bytes: 4 };
    return { units: 1, bytes: 6 }; // lone surrogate: JSON.stringify writes \udXXX
  }
  if (code >= 0xdc00 && code <= 0xdfff) return { units: 1, bytes: 6 };
  return { units: 1, bytes: 3 };
}

export function splitForEvents(text: string, maxBytes: number): string[] {
  if (maxBytes < 12) throw new Error(`splitForEvents: maxBytes must be at least 12, got ${maxBytes}`);
  // Fast path: even if every unit escaped to 6 bytes it would fit.
  if (text.length * 6 <= maxBytes) return text.length === 0 ? [] : [text];
  const pieces: string[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < text.length; ) {
    const { units, bytes: size } = escapedBytes(text, i);
    if (bytes + size > maxBytes) {
      pieces.push(text.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += size;
    i += units;
  }
  if (start < text.length) pieces.push(text.slice(start));
  return pieces;
}

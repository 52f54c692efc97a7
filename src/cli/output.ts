/**
 * How the CLI prints: JSON for machines (`--json`, stable field names from the API), aligned
 * tables and short relative times for people. Results go to stdout; progress and hints go to
 * stderr, so `id=$(airlock task create …)` and pipes see only the result.
 */

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One JSON document per line (for streams: `task logs -f --json`). */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function printLine(text = ''): void {
  process.stdout.write(`${text}\n`);
}

/** Progress, hints and warnings: never mixed into the result on stdout. */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Columns padded to their widest cell; the last column is not padded (no trailing spaces). */
export function formatTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** "12s ago", "5m ago", "3h ago", "4d ago"; "-" for null. */
export function formatAge(iso: string | null, now = Date.now()): string {
  if (iso === null) return '-';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

/** A duration between two ISO times ("1m 05s"), or "-" when either is missing. */
export function formatDuration(fromIso: string | null, toIso: string | null): string {
  if (fromIso === null || toIso === null) return '-';
  const seconds = Math.max(0, Math.round((Date.parse(toIso) - Date.parse(fromIso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

/** The first line of `text`, cut to `max` characters; an ellipsis says something was left out. */
export function summarize(text: string, max: number): string {
  const first = text.split('\n', 1)[0] ?? '';
  if (first.length > max) return `${first.slice(0, max - 1)}…`;
  return first.length < text.trimEnd().length ? `${first} …` : first;
}

/** Token counts for people: 950, 12.3k, 4.1M. */
export function formatTokens(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 100_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

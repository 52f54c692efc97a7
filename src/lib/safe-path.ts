/**
 * Joining untrusted names (execution ids, file names from messages) onto a trusted root without
 * ever leaving it. Each segment must be one plain path component: no separators, no `.`/`..`, no
 * NUL, not empty. The result is checked to lie strictly inside the root as a second line of
 * defence.
 *
 * Invariant: `safeJoin(root, ...s)` either returns a path `p` with `path.relative(root, p)`
 * neither empty nor starting with `..`, or throws.
 */
import path from 'node:path';

/** Longest component most filesystems accept (NAME_MAX on Linux). */
const MAX_COMPONENT_BYTES = 255;

export class UnsafePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafePathError';
  }
}

/** Why `segment` is not a single safe path component, or undefined when it is. */
export function unsafeSegmentReason(segment: string): string | undefined {
  if (segment.length === 0) return 'it is empty';
  if (segment === '.' || segment === '..') return `"${segment}" refers to a directory itself or its parent`;
  if (segment.includes('/') || segment.includes('\\')) return 'it contains a path separator';
  if (segment.includes('\0')) return 'it contains a NUL byte';
  if (Buffer.byteLength(segment, 'utf8') > MAX_COMPONENT_BYTES) return `it is longer than ${MAX_COMPONENT_BYTES} bytes`;
  return undefined;
}

export function safeJoin(root: string, ...segments: string[]): string {
  const base = path.resolve(root);
  for (const segment of segments) {
    const reason = unsafeSegmentReason(segment);
    if (reason) throw new UnsafePathError(`refusing to use ${JSON.stringify(segment)} as a file name under ${base}: ${reason}`);
  }
  const joined = path.join(base, ...segments);
  const relative = path.relative(base, joined);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
    throw new UnsafePathError(`refusing path ${JSON.stringify(joined)}: it is not inside ${base}`);
  }
  return joined;
}

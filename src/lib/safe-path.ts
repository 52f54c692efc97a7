/**
 * Joining untrusted names (execution ids, file names from messages) onto a trusted root without
 * ever leaving it. Each segment must be one plain path component: no separators, no `.`/`..`, no
 * NUL, not empty. The result is checked to lie strictly inside the root as a second line of
 * defence.
 *
 * Invariant: `safeJoin(root, ...s)` either returns a path `p` with `path.relative(root, p)`
 * neither empty nor starting with `..`, or throws.
 */
import { lstat, realpath } from 'node:fs/promises';
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

/**
 * Resolving an untrusted, possibly multi-component path (a model's tool argument) inside a root,
 * through the real filesystem: `..`, absolute paths and symlinks at any component are allowed only
 * while the place they lead stays inside the root.
 *
 * Invariant: `resolveInsideRoot(root, p)` either throws `UnsafePathError`, or returns an absolute
 * path under `realpath(root)` (or that directory itself) whose deepest existing ancestor's realpath
 * is also under it; the not-yet-existing rest has no symlinks because it does not exist. A dangling
 * symlink (one whose target is missing) is refused: writing through it would create its target.
 * (A concurrent process that swaps a component for a symlink after the check can still race it:
 * the check guards a model's mistakes and tricks, not a hostile process in the same sandbox.)
 */
export async function resolveInsideRoot(root: string, requested: string): Promise<string> {
  const shown = JSON.stringify(requested);
  if (requested.length === 0) throw new UnsafePathError('the path is empty — give a path relative to the working directory, e.g. "src/index.ts"');
  if (requested.includes('\0')) throw new UnsafePathError(`the path ${shown} contains a NUL byte — remove it`);
  const lexicalRoot = path.resolve(root);
  const realRoot = await realpath(lexicalRoot);
  const outside = () =>
    new UnsafePathError(`the path ${shown} leads outside the working directory ${lexicalRoot} — use a path inside it, relative to it`);

  // Lexically first: `..` and absolute paths may not leave the root (in either of its spellings).
  const lexical = path.resolve(lexicalRoot, requested);
  const inLexical = isInside(lexicalRoot, lexical);
  const inReal = isInside(realRoot, lexical);
  if (!inLexical && !inReal) throw outside();
  let candidate = inLexical ? path.join(realRoot, path.relative(lexicalRoot, lexical)) : lexical;

  // Then physically: realpath of the deepest existing ancestor, plus the missing rest.
  const missing: string[] = [];
  for (;;) {
    try {
      const real = await realpath(candidate);
      const resolved = path.join(real, ...missing);
      if (!isInside(realRoot, resolved)) throw outside();
      return resolved;
    } catch (err) {
      if (err instanceof UnsafePathError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw new UnsafePathError(`the path ${shown} goes through a symlink loop — use a path without it`);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new UnsafePathError(`the path ${shown} cannot be resolved (${code ?? String(err)})`);
      const isDanglingLink = await lstat(candidate).then((s) => s.isSymbolicLink(), () => false);
      if (isDanglingLink) throw new UnsafePathError(`the path ${shown} goes through a symlink whose target does not exist — refusing to follow it`);
      const parent = path.dirname(candidate);
      if (parent === candidate) throw outside(); // unreachable: the root itself exists
      missing.unshift(path.basename(candidate));
      candidate = parent;
    }
  }
}

/** True when `p` is `root` itself or lies under it (both absolute and normalised). */
export function isInside(root: string, p: string): boolean {
  const relative = path.relative(root, p);
  return relative === '' || (!relative.startsWith('..' + path.sep) && relative !== '..' && !path.isAbsolute(relative));
}

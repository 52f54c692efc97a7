/**
 * A well-formed `Artifacts` value (one repository, a one-line change) for tests of how the
 * control plane stores and shows results; override any field.
 */
import type { Artifacts } from '../../src/protocol/task.js';

export function sampleArtifacts(overrides: Partial<Artifacts> = {}, diff = 'diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-old\n+new\n'): Artifacts {
  const repository = {
    url: 'https://git.example.com/acme/api.git',
    path: 'api',
    branch: 'airlock/abcdefgh',
    base_commit: 'a'.repeat(40),
    commit: 'b'.repeat(40),
    diffstat: { files_changed: 1, insertions: 1, deletions: 1 },
    diff,
    diff_truncated: false,
    diff_bytes: Buffer.byteLength(diff),
    pushed: false,
    push_error: null,
    pull_request_url: null,
    pull_request_error: null,
  };
  return {
    branch: repository.branch,
    commit: repository.commit,
    diff,
    diff_truncated: false,
    diffstat: repository.diffstat,
    summary: 'Replaced old with new.',
    stop_reason: 'completed',
    pushed: false,
    pull_request_url: null,
    repositories: [repository],
    ...overrides,
  };
}

/**
 * A well-formed `Artifacts` value (one repository, a one-line change) for tests of how the
 * control plane stores and shows results; override any field.
 */
import type { Artifacts, RepositoryArtifacts } from '../../src/protocol/task.js';

export function sampleArtifacts(
  overrides: Partial<Artifacts> = {},
  diff = 'diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-old\n+new\n',
  repositoryOverrides: Partial<RepositoryArtifacts> = {},
): Artifacts {
  const repository: RepositoryArtifacts = {
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
    ...repositoryOverrides,
  };
  // The top level mirrors the first repository, as the worker reports it.
  return {
    branch: repository.branch,
    commit: repository.commit,
    diff: repository.diff,
    diff_truncated: repository.diff_truncated,
    diffstat: repository.diffstat,
    summary: 'Replaced old with new.',
    stop_reason: 'completed',
    pushed: repository.pushed,
    pull_request_url: repository.pull_request_url,
    repositories: [repository],
    ...overrides,
  };
}

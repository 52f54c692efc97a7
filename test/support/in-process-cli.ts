/**
 * Run the `airlock` CLI in this process against a test API (fast: no Node start-up per command),
 * capturing what it writes. Errors the command throws are returned, not raised, so a test can
 * assert on refusals; `--server` and `--api-key` are appended.
 */
import { vi } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';

export interface InProcessCliResult {
  stdout: string;
  stderr: string;
  error?: unknown;
}

export async function runInProcess(args: string[], target: { server: string; apiKey: string }): Promise<InProcessCliResult> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  try {
    const program = buildProgram();
    program.configureOutput({ writeErr: (s) => (stderr += s), writeOut: (s) => (stdout += s) });
    await program.parseAsync(['node', 'airlock', ...args, '--server', target.server, '--api-key', target.apiKey]);
    return { stdout, stderr };
  } catch (error) {
    return { stdout, stderr, error };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

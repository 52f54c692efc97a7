/** Placeholder: implemented by the agent runtime work (see harness/harness.ts). */
export async function runAgent(_options: { env: NodeJS.ProcessEnv }): Promise<number> {
  throw new Error('not implemented yet');
}

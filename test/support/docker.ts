// The Docker Engine and image the docker-backend tests run against. `npm test` provisions both
// (scripts/test.sh starts dockerd, scripts/test-image.sh builds the image); a test that finds
// either missing fails with what to run — docker tests never skip.
import { describeError } from '../../src/protocol/errors.js';
import type Dockerode from 'dockerode';
import { connectEngine, type EngineConnection } from '../../src/worker/backends/docker/engine.js';

/** Debian bookworm (minbase) with git and CA certificates, built by scripts/test-image.sh. */
export const TEST_IMAGE = 'airlock-test/debian:bookworm';

/** Label on every container a test creates, so cleanup (and the leak check) can find them. */
export const TEST_CONTAINER_LABEL = 'dev.airlock.test';

const HOW_TO_FIX = 'run `npm test` (as root it starts dockerd and builds the image) or `bash scripts/test-image.sh` with dockerd running';

/**
 * Connects to the engine the environment names and checks that TEST_IMAGE is there. Throws an
 * error saying what is missing and what to run; never returns a "skip".
 */
export async function requireTestEngine(): Promise<EngineConnection> {
  let engine: EngineConnection;
  try {
    engine = await connectEngine();
  } catch (err) {
    throw new Error(`the docker tests need a running Docker Engine: ${describeError(err)} — ${HOW_TO_FIX}`, { cause: err });
  }
  try {
    await engine.docker.getImage(TEST_IMAGE).inspect();
  } catch (err) {
    const missing = (err as { statusCode?: number }).statusCode === 404;
    throw new Error(`the docker tests need the image ${TEST_IMAGE} on ${engine.target}, but ${missing ? 'it is not there' : `inspecting it failed: ${describeError(err)}`} — ${HOW_TO_FIX}`, {
      cause: err,
    });
  }
  return engine;
}

/**
 * Remove every container and volume carrying `label` (`key=value`, or a bare key), whatever its
 * state: what a test's workers left running on purpose (they detach) or by failing.
 */
export async function removeLabelled(docker: Dockerode, label: string): Promise<void> {
  const filters = JSON.stringify({ label: [label] });
  for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
}

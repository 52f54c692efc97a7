/**
 * The Backend conformance suite (test/unit/backend-conformance.ts) against the docker backend on
 * a real Docker Engine: the same promises every backend keeps, in containers of the test image.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.js';
import type Dockerode from 'dockerode';
import { bundledAgentRuntime } from '../../src/worker/backends/agent-command.js';
import { DockerBackend } from '../../src/worker/backends/docker/backend.js';
import { resolveDockerOptions } from '../../src/worker/backends/docker/options.js';
import { removeLabelled, requireTestEngine, TEST_CONTAINER_LABEL, TEST_IMAGE } from '../support/docker.js';
import { tempDir } from '../support/stack.js';
import { describeBackendConformance } from '../unit/backend-conformance.js';

const MARK = `conformance-${Math.random().toString(36).slice(2, 8)}`;
let docker: Dockerode;

beforeAll(async () => {
  docker = (await requireTestEngine()).docker;
});

afterAll(async () => {
  await removeLabelled(docker, `${TEST_CONTAINER_LABEL}=${MARK}`);
});

describeBackendConformance('docker', async ({ workspaceRoot, noCleanup }) =>
  new DockerBackend({
    docker: resolveDockerOptions({ default_image: TEST_IMAGE }),
    workspaceRoot,
    runtime: { node: process.execPath, bundle: bundledAgentRuntime() },
    noCleanup,
    labels: { [TEST_CONTAINER_LABEL]: MARK },
  }),
);

describe('DockerBackend specifics', () => {
  const options = (workspaceRoot: string, extra: Partial<ConstructorParameters<typeof DockerBackend>[0]> = {}) => ({
    docker: resolveDockerOptions({ default_image: TEST_IMAGE }),
    workspaceRoot,
    runtime: { node: process.execPath, bundle: bundledAgentRuntime() },
    noCleanup: false,
    labels: { [TEST_CONTAINER_LABEL]: MARK },
    ...extra,
  });

  it('refuses to start when the engine is unreachable, naming what it tried', async () => {
    const backend = new DockerBackend(options(tempDir('dkx'), { engineEnv: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' } }));
    await expect(backend.init()).rejects.toThrow(/unix:\/\/\/nonexistent\/docker\.sock/);
  });

  it('the periodic sweep removes exited containers of this worker that nothing tracks, and leaves others alone', async () => {
    const backend = new DockerBackend(options(tempDir('dks')));
    await backend.init();
    await backend.recover('sweep-worker');
    const make = async (workerId: string) => {
      const executionId = newId('exe');
      const container = await docker.createContainer({
        Image: TEST_IMAGE,
        Cmd: ['true'],
        Labels: { [TEST_CONTAINER_LABEL]: MARK, 'dev.airlock.worker-id': workerId, 'dev.airlock.execution-id': executionId, 'dev.airlock.epoch': '1' },
        name: `airlock-${executionId}`,
      });
      await container.start();
      await container.wait();
      return container;
    };
    const ours = await make('sweep-worker');
    const theirs = await make('another-worker');
    expect(await backend.sweep()).toBe(1);
    await expect(ours.inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await theirs.inspect()).State.Status).toBe('exited');
    await backend.close();
  });
});

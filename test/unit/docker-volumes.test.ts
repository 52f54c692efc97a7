/**
 * Operator volumes of the docker backend, fed hostile specs: every refusal must name the volume,
 * the problem and the fix. Host checks run against real files, symlinks, a hard link and a live
 * Unix socket standing in for the engine's.
 */
import { linkSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusal } from '../support/refusal.js';
import { ValidationError } from '../../src/protocol/errors.js';
import {
  AIRLOCK_MOUNT_ROOT,
  engineSocketUnder,
  parseVolumeSpec,
  resolveAllowedRoots,
  resolveVolumes,
  unnormalisedPathReason,
  volumeMounts,
} from '../../src/worker/backends/docker/volumes.js';

let root: string;
let allowed: string;
let outside: string;
let fakeSocket: string;
let server: Server;

beforeAll(async () => {
  root = realpathSync(mkdtempSync(path.join(tmpdir(), 'al-vol-')));
  allowed = path.join(root, 'allowed');
  outside = path.join(root, 'outside');
  mkdirSync(path.join(allowed, 'data'), { recursive: true });
  mkdirSync(path.join(allowed, 'engine'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(allowed, 'data', 'file.txt'), 'x');
  symlinkSync('/var/run/docker.sock', path.join(allowed, 'to-docker-sock'));
  symlinkSync('/run', path.join(allowed, 'to-run'));
  symlinkSync(outside, path.join(allowed, 'to-outside'));
  symlinkSync('/', path.join(allowed, 'to-root'));
  symlinkSync(allowed, path.join(root, 'allowed-link'));
  // A live socket standing in for an engine on a non-default path, and a hard link to it.
  fakeSocket = path.join(allowed, 'engine', 'engine.sock');
  server = createServer();
  await new Promise<void>((resolve) => server.listen(fakeSocket, resolve));
  linkSync(fakeSocket, path.join(allowed, 'hardlinked.sock'));
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(root, { recursive: true, force: true });
});

describe('parseVolumeSpec (lexical)', () => {
  it('parses HOST:CONTAINER with the default mode rw, and :ro / :rw', () => {
    expect(parseVolumeSpec('/srv/a:/data', 'v')).toEqual({ spec: '/srv/a:/data', hostPath: '/srv/a', containerPath: '/data', readOnly: false });
    expect(parseVolumeSpec('/srv/a:/data:ro', 'v').readOnly).toBe(true);
    expect(parseVolumeSpec('/srv/a:/data:rw', 'v').readOnly).toBe(false);
  });

  const hostile: Array<[string, string, RegExp]> = [
    ['an empty spec', '', /volume is empty — write it as HOST:CONTAINER\[:ro\|rw\]/],
    ['blank spaces', '   ', /volume is empty — write it as HOST:CONTAINER/],
    ['no container path', '/srv/a', /no container path — write it as HOST:CONTAINER.*\/srv\/a:\/data/],
    ['too many colons', '/srv/a:/data:ro:extra', /too many ":" — write it as HOST:CONTAINER/],
    ['a path with a colon', '/srv/a:b:/data:ro', /too many ":"/],
    ['a relative host path', 'data:/data', /host path "data" is relative — write it as an absolute path/],
    ['a ./ host path', './data:/data', /host path "\.\/data" is relative/],
    ['a home-relative host path', '~/data:/data', /relative/],
    ['an empty host path', ':/data', /host path is empty — write an absolute path/],
    ['a .. segment in the host path', '/srv/../etc:/data', /host path "\/srv\/\.\.\/etc" has a "\.\." segment — name the directory directly/],
    ['a trailing .. in the host path', '/srv/..:/data', /has a "\.\." segment/],
    ['a . segment', '/srv/./a:/data', /not normalised — write it as "\/srv\/a"/],
    ['a double slash', '/srv//a:/data', /not normalised — write it as "\/srv\/a"/],
    ['a trailing slash', '/srv/a/:/data', /not normalised — write it as "\/srv\/a"/],
    ['the host root', '/:/host', /host's root directory would hand the task the whole host — mount only the directory it needs/],
    ['a NUL byte', '/srv/a\0b:/data', /NUL byte — remove it/],
    ['a relative container path', '/srv/a:data', /container path "data" is relative — write it as an absolute path/],
    ['a .. in the container path', '/srv/a:/data/../etc', /container path "\/data\/\.\.\/etc" has a "\.\." segment/],
    ['a container path of /', '/srv/a:/', /container path cannot be \/ .* mount at a directory such as \/data/],
    ['the Airlock mount root', `/srv/a:${AIRLOCK_MOUNT_ROOT}`, /inside \/airlock, where Airlock mounts its own runtime and gateway — choose a path outside \/airlock/],
    ['a path under /airlock', `/srv/a:${AIRLOCK_MOUNT_ROOT}/gateway`, /inside \/airlock.*choose a path outside/],
    ['a bad mode', '/srv/a:/data:rwx', /mode "rwx" is not ro or rw — end the volume with :ro for read-only, or :rw/],
    ['a Docker-only mode', '/srv/a:/data:z', /mode "z" is not ro or rw/],
    ['an empty mode', '/srv/a:/data:', /mode "" is not ro or rw/],
  ];
  it.each(hostile)('refuses %s, naming the volume and the fix', (_what, spec, fix) => {
    const err = refusal(() => parseVolumeSpec(spec, 'docker.volumes[3]'));
    expect(err.message).toContain(`docker.volumes[3] ${JSON.stringify(spec)}`);
    expect(err.message).toMatch(fix);
    expect(err.details).toMatchObject({ field: 'docker.volumes[3]' });
  });

  it('allows a container path that merely starts with the same letters as /airlock', () => {
    expect(parseVolumeSpec('/srv/a:/airlocked', 'v').containerPath).toBe('/airlocked');
  });

  const segment = fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/);
  const cleanPath = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => `/${s.join('/')}`);

  it('refuses any spec with a .. segment in either path (property)', () => {
    const withDotDot = fc
      .tuple(fc.array(fc.oneof(segment, fc.constant('..')), { minLength: 1, maxLength: 5 }), fc.nat())
      .map(([segments, at]) => {
        const copy = [...segments];
        copy.splice(at % (copy.length + 1), 0, '..');
        return `/${copy.join('/')}`;
      });
    fc.assert(
      fc.property(withDotDot, cleanPath, fc.boolean(), fc.constantFrom('', ':ro', ':rw'), (dotted, clean, dottedIsHost, mode) => {
        const spec = dottedIsHost ? `${dotted}:${clean}${mode}` : `${clean}:${dotted}${mode}`;
        expect(() => parseVolumeSpec(spec, 'v')).toThrow(/"\.\." segment/);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips normalised paths and the mode (property)', () => {
    const container = cleanPath.filter((p) => p !== AIRLOCK_MOUNT_ROOT && !p.startsWith(`${AIRLOCK_MOUNT_ROOT}/`));
    fc.assert(
      fc.property(cleanPath, container, fc.constantFrom(undefined, 'ro', 'rw'), (host, target, mode) => {
        const spec = mode ? `${host}:${target}:${mode}` : `${host}:${target}`;
        expect(parseVolumeSpec(spec, 'v')).toEqual({ spec, hostPath: host, containerPath: target, readOnly: mode === 'ro' });
      }),
      { numRuns: 500 },
    );
  });

  it('accepts only absolute, normalised paths, whatever the characters (property)', () => {
    const messy = fc.string({ unit: fc.constantFrom('/', '.', 'a', 'b', ':', ' '), maxLength: 16 });
    fc.assert(
      fc.property(messy, (spec) => {
        let parsed;
        try {
          parsed = parseVolumeSpec(spec, 'v');
        } catch (err) {
          expect(err).toBeInstanceOf(ValidationError);
          return;
        }
        for (const p of [parsed.hostPath, parsed.containerPath]) {
          expect(path.posix.isAbsolute(p)).toBe(true);
          expect(p).not.toBe('/');
          expect(p === path.posix.normalize(p) && !p.endsWith('/')).toBe(true);
          expect(unnormalisedPathReason(p, 'host')).toBeUndefined();
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('resolveVolumes (host checks)', () => {
  it('resolves a volume to a bind mount of its realpath', () => {
    const [mount] = resolveVolumes([`${allowed}/data:/data:ro`]);
    expect(mount).toMatchObject({ hostPath: `${allowed}/data`, source: `${allowed}/data`, containerPath: '/data', readOnly: true });
    expect(volumeMounts([mount!])).toEqual([{ Type: 'bind', Source: `${allowed}/data`, Target: '/data', ReadOnly: true }]);
  });

  it('mounts the target of a symlink, not the link (so it cannot be swapped later)', () => {
    const [mount] = resolveVolumes([`${root}/allowed-link/data:/data`], { allowedRoots: [allowed] });
    expect(mount!.source).toBe(`${allowed}/data`);
  });

  it('accepts a single file', () => {
    expect(resolveVolumes([`${allowed}/data/file.txt:/etc/x.txt:ro`])[0]!.source).toBe(`${allowed}/data/file.txt`);
  });

  // Specs name {allowed}, filled in once beforeAll has made the directory.
  const hostile: Array<[string, string, RegExp]> = [
    ['a missing host path', '{allowed}/nope:/data', /host path ".*\/nope" does not exist on the worker host .* — create it first, or fix the path/],
    ['the Docker socket', '/var/run/docker.sock:/var/run/docker.sock', /is the container engine's socket \/var\/run\/docker\.sock: whoever reaches that socket controls every container and the host as root — remove this volume/],
    ['the Docker socket under /run', '/run/docker.sock:/docker.sock', /is the container engine's socket \/run\/docker\.sock.*remove this volume/],
    ['/var/run, which contains the socket', '/var/run:/host-run', /host path "\/var\/run" contains the container engine's socket \/var\/run\/docker\.sock: .* — mount a narrower directory that does not contain it/],
    ['/run', '/run:/host-run', /contains the container engine's socket.*mount a narrower directory/],
    ['/var', '/var:/host-var', /contains the container engine's socket/],
    ['a symlink to the Docker socket', '{allowed}/to-docker-sock:/s', /which resolves to "\/run\/docker\.sock"\) is the container engine's socket.*remove this volume/],
    ['a symlink to /run', '{allowed}/to-run:/r', /which resolves to "\/run"\) contains the container engine's socket/],
    ['a symlink to /', '{allowed}/to-root:/r', /which resolves to "\/"\) is the host's root directory — mount only the directory the task needs/],
  ];
  it.each(hostile)('refuses %s, naming the volume and the fix', (_what, template, fix) => {
    const spec = template.replace('{allowed}', allowed);
    const err = refusal(() => resolveVolumes(['/tmp:/ok', spec]));
    expect(err.message).toContain(`docker.volumes[1] ${JSON.stringify(spec)}`);
    expect(err.message).toMatch(fix);
  });

  it("refuses the worker's own engine socket, a hard link to it and the directory holding it", () => {
    const options = { engineSocketPath: fakeSocket };
    expect(refusal(() => resolveVolumes([`${fakeSocket}:/s`], options)).message).toMatch(/is the container engine's socket .*engine\.sock.*remove this volume/);
    expect(refusal(() => resolveVolumes([`${allowed}/hardlinked.sock:/s`], options)).message).toMatch(/hardlinked\.sock.*is the container engine's socket .*engine\.sock/);
    expect(refusal(() => resolveVolumes([`${allowed}/engine:/e`], options)).message).toMatch(/contains the container engine's socket .*mount a narrower directory/);
    expect(refusal(() => resolveVolumes([`${allowed}:/e`], options)).message).toMatch(/contains the container engine's socket/);
  });

  it('refuses a host path outside allowed_volume_roots, also through a symlink, naming the roots', () => {
    const options = { allowedRoots: [allowed] };
    const direct = refusal(() => resolveVolumes([`${outside}:/o`], options));
    expect(direct.message).toMatch(/is outside allowed_volume_roots \(.*\/allowed\) — move the data under one of them, or add its directory to allowed_volume_roots/);
    const viaLink = refusal(() => resolveVolumes([`${allowed}/to-outside:/o`], options));
    expect(viaLink.message).toMatch(/to-outside" \(which resolves to ".*\/outside"\) is outside allowed_volume_roots/);
    expect(resolveVolumes([`${allowed}/data:/d`], options)).toHaveLength(1);
  });

  it('compares against the realpath of a symlinked allowed root', () => {
    expect(resolveVolumes([`${allowed}/data:/d`], { allowedRoots: [`${root}/allowed-link`] })[0]!.source).toBe(`${allowed}/data`);
    expect(refusal(() => resolveVolumes([`${outside}:/o`], { allowedRoots: [`${root}/allowed-link`] })).message).toMatch(/outside allowed_volume_roots/);
  });

  it('refuses allowed roots that are relative, unnormalised, missing or /', () => {
    expect(refusal(() => resolveAllowedRoots(['srv'], 'docker.allowed_volume_roots')).message).toMatch(/docker\.allowed_volume_roots\[0\] "srv".*relative — write it as an absolute path/);
    expect(refusal(() => resolveAllowedRoots(['/srv/../etc'], 'r')).message).toMatch(/"\.\." segment/);
    expect(refusal(() => resolveAllowedRoots([`${root}/missing`], 'r')).message).toMatch(/does not exist on the worker host — create it, or remove it from the list/);
    expect(refusal(() => resolveAllowedRoots(['/'], 'r')).message).toMatch(/would allow every host path/);
  });

  it('refuses two volumes at one container path', () => {
    const err = refusal(() => resolveVolumes([`${allowed}/data:/d`, `${outside}:/d:ro`]));
    expect(err.message).toMatch(/docker\.volumes\[1\] .*"\/d" is already mounted by ".*\/data:\/d" — give each volume its own container path/);
  });

  it('names the flag it was given when called for -v', () => {
    expect(refusal(() => resolveVolumes(['rel:/d'], { field: '-v' })).message).toMatch(/^-v\[0\] "rel:\/d"/);
  });
});

describe('engineSocketUnder', () => {
  const sockets = ['/var/run/docker.sock', '/run/docker.sock'];
  it('finds a socket that a path is or contains, and nothing else', () => {
    expect(engineSocketUnder('/var/run/docker.sock', sockets)).toBe('/var/run/docker.sock');
    expect(engineSocketUnder('/run', sockets)).toBe('/run/docker.sock');
    expect(engineSocketUnder('/', sockets)).toBeDefined();
    expect(engineSocketUnder('/run/docker', sockets)).toBeUndefined();
    expect(engineSocketUnder('/run/docker.sock.d', sockets)).toBeUndefined();
    expect(engineSocketUnder('/srv', sockets)).toBeUndefined();
  });
});

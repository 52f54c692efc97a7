/**
 * A task's size (`resources: {cpus?, memory?}`) as the protocol validates it: the size parser
 * (lib/byte-size.ts) fuzzed against the docker backend's own, what is accepted and kept as
 * written, and hostile values — each refused with a message that names the field and the fix.
 * The same schema serves a task's inline fields, an environment (create and PATCH) and the
 * offer's ExecutionSpec.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatByteSize, parseByteSize } from '../../src/lib/byte-size.js';
import { EnvironmentCreate, EnvironmentUpdate, MAX_TASK_MEMORY_BYTES, MIN_TASK_MEMORY_BYTES, Resources, cpusProblem, memoryProblem } from '../../src/protocol/environment.js';
import { ExecutionSpec, TaskCreate } from '../../src/protocol/task.js';
import { zodToValidationError } from '../../src/protocol/zod-errors.js';
import { parseByteSize as dockerParseByteSize } from '../../src/worker/backends/docker/options.js';

const GiB = 1024 ** 3;

/** The message the API would answer for this task body, or undefined if it is valid. */
function taskError(resources: unknown): string | undefined {
  const result = TaskCreate.safeParse({ prompt: 'x', resources });
  return result.success ? undefined : zodToValidationError(result.error, 'task').message;
}

describe('parseByteSize', () => {
  it('reads Docker-style sizes in binary units, and whole byte counts', () => {
    const cases: Array<[string | number, number]> = [
      ['6m', 6 * 1024 ** 2],
      ['512m', 512 * 1024 ** 2],
      ['2g', 2 * GiB],
      ['1.5g', 1.5 * GiB],
      ['1.5G', 1.5 * GiB],
      ['2GiB', 2 * GiB],
      ['512MB', 512 * 1024 ** 2],
      ['64k', 64 * 1024],
      ['1t', 1024 ** 4],
      ['100b', 100],
      ['100', 100],
      [2_147_483_648, 2_147_483_648],
    ];
    for (const [input, bytes] of cases) expect(parseByteSize(input), String(input)).toBe(bytes);
  });

  it('refuses anything else: signs, exponents, hex, spaces, unknown units, non-integers, zero, overflow', () => {
    for (const input of ['', '-1g', '+1g', '1e9', '0x10', ' 2g', '2 g', '2g ', '5x', '2gb2', '1bb', 'g', '.5g', 'NaN', 'Infinity', '0', '0g', '9'.repeat(40), '99999999999t', 1.5, 0, -1, NaN, Infinity, 2 ** 53]) {
      expect(parseByteSize(input), String(input)).toBeUndefined();
    }
  });

  it('accepts only what the docker backend’s own parser accepts, to the same byte (fuzzed)', () => {
    const unit = fc.constantFrom('', 'b', 'k', 'K', 'm', 'M', 'g', 'G', 't', 'kb', 'MiB', 'GB', 'gib', 'x', 'B', 'iB', 'tb');
    const text = fc.tuple(fc.stringMatching(/^\d{1,6}(\.\d{1,3})?$/), unit).map(([n, u]) => `${n}${u}`);
    fc.assert(
      fc.property(fc.oneof(text, fc.string({ maxLength: 12 }), fc.integer({ min: -10, max: 2 ** 42 })), (input) => {
        const ours = parseByteSize(input);
        if (ours !== undefined) expect(dockerParseByteSize(input)).toBe(ours);
      }),
      { numRuns: 2000 },
    );
  });

  it('formats bytes in the largest readable binary unit', () => {
    expect(formatByteSize(512)).toBe('512 B');
    expect(formatByteSize(6 * 1024 ** 2)).toBe('6 MiB');
    expect(formatByteSize(1.5 * GiB)).toBe('1.5 GiB');
    expect(formatByteSize(1024 ** 4)).toBe('1 TiB');
  });
});

describe('resources: accepted values', () => {
  it('takes CPUs with fractions and memory as a size or bytes, each optional, and keeps them as written', () => {
    const valid = [{}, { cpus: 0.01 }, { cpus: 0.5 }, { cpus: 2 }, { cpus: 256 }, { memory: '6m' }, { memory: '512m' }, { memory: '2g' }, { memory: '1.5g' }, { memory: '2GiB' }, { memory: '1t' }, { memory: MIN_TASK_MEMORY_BYTES }, { memory: MAX_TASK_MEMORY_BYTES }, { memory: '4294967296' }, { cpus: 1.5, memory: '3g' }];
    for (const resources of valid) {
      expect(taskError(resources), JSON.stringify(resources)).toBeUndefined();
      expect(Resources.parse(resources)).toEqual(resources);
      expect(EnvironmentCreate.parse({ name: 'sized', resources }).resources).toEqual(resources);
    }
  });

  it('is optional everywhere: a task, an environment and an offer from an older server may leave it out', () => {
    expect(TaskCreate.parse({ prompt: 'x' }).resources).toBeUndefined();
    expect(EnvironmentCreate.parse({ name: 'plain' }).resources).toBeUndefined();
    const olderOffer = { execution_id: 'exe_aaaaaaaaaaaaaaaaaaaa', task_id: 'tsk_aaaaaaaaaaaaaaaaaaaa', epoch: 1, prompt: 'p', harness: 'shell', timeout_seconds: null, title: null };
    expect(ExecutionSpec.parse(olderOffer).resources).toBeUndefined();
    expect(ExecutionSpec.parse({ ...olderOffer, resources: { cpus: 0.5, memory: '1.5g' } }).resources).toEqual({ cpus: 0.5, memory: '1.5g' });
    expect(ExecutionSpec.safeParse({ ...olderOffer, resources: { cpus: 0 } }).success).toBe(false);
  });

  it('lets a PATCH clear one field (null) or both (resources: null)', () => {
    expect(EnvironmentUpdate.parse({ resources: { cpus: null, memory: '2g' } }).resources).toEqual({ cpus: null, memory: '2g' });
    expect(EnvironmentUpdate.parse({ resources: null }).resources).toBeNull();
    expect(EnvironmentUpdate.parse({}).resources).toBeUndefined();
  });
});

describe('resources: hostile values are refused naming the field and the fix', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['zero CPUs', { cpus: 0 }, /resources\.cpus: must be at least 0\.01 .*got 0 — ask for a fraction such as 0\.5, or leave cpus out/],
    ['negative CPUs', { cpus: -2 }, /resources\.cpus: must be at least 0\.01 .*got -2/],
    ['below the granularity', { cpus: 0.001 }, /resources\.cpus: must be at least 0\.01/],
    ['CPUs as a string', { cpus: '2' }, /resources\.cpus: must be a number of CPUs such as 2 or 0\.5 \(a JSON number\), got the string "2"/],
    ['NaN-like CPUs', { cpus: 'NaN' }, /resources\.cpus: must be a number of CPUs .*got the string "NaN"/],
    ['infinite CPUs', { cpus: Infinity }, /resources\.cpus: must be a finite number of CPUs/],
    ['huge CPUs', { cpus: 1e9 }, /resources\.cpus: must be at most 256, got 1000000000 — ask for the CPUs the task needs/],
    ['CPUs as null', { cpus: null }, /resources\.cpus: must be a number of CPUs .*got null/],
    ['CPUs as a list', { cpus: [2] }, /resources\.cpus: must be a number of CPUs .*got a list/],
    ['unknown unit', { memory: '5x' }, /resources\.memory: must be a size such as "512m", "2g" or "1\.5g" .*got "5x"/],
    ['NaN-like memory', { memory: 'NaN' }, /resources\.memory: must be a size such as .*got "NaN"/],
    ['negative memory', { memory: '-1g' }, /resources\.memory: must be a size such as .*got "-1g"/],
    ['exponent memory', { memory: '1e9' }, /resources\.memory: must be a size such as .*got "1e9"/],
    ['hex memory', { memory: '0x100000000' }, /resources\.memory: must be a size such as/],
    ['empty memory', { memory: '' }, /resources\.memory: must be a size such as .*got ""/],
    ['memory with spaces', { memory: '2 g' }, /resources\.memory: must be a size such as/],
    ['oversized text', { memory: '9'.repeat(10_000) }, /resources\.memory: must be a size such as .*got "9{40}…"/],
    ['below Docker’s floor', { memory: '5m' }, /resources\.memory: must be at least 6m \(6 MiB, Docker's floor\), got "5m" \(5 MiB\) — ask for more, or leave memory out/],
    ['bytes meant as megabytes', { memory: 512 }, /resources\.memory: must be at least 6m .*got 512 \(512 B\) — a plain number is bytes: write 512m for megabytes/],
    ['a digit string meant as megabytes', { memory: '512' }, /write 512m for megabytes/],
    ['zero bytes', { memory: 0 }, /resources\.memory: must be a size such as/],
    ['fractional bytes', { memory: 1.5 }, /resources\.memory: must be a whole number of bytes, got 1\.5 — or write a size such as "1\.5g"/],
    ['huge memory', { memory: '2t' }, /resources\.memory: must be at most 1t \(1 TiB\), got "2t" — ask for the memory the task needs/],
    ['huge byte count', { memory: 2 ** 53 }, /resources\.memory: must be a whole number of bytes/],
    ['memory as a boolean', { memory: true }, /resources\.memory: must be a size such as .*got true/],
    ['memory as an object', { memory: { value: 2 } }, /resources\.memory: must be a size such as .*got an object/],
    ['an unknown size field', { cpus: 2, gpus: 1 }, /resources: unknown field "gpus" — remove it/],
    ['a misspelt field', { mem: '2g' }, /resources: unknown field "mem" — remove it/],
    ['not an object', '2 CPUs', /resources: must be an object such as \{"cpus": 2, "memory": "4g"\} .*got "2 CPUs"/],
    ['a list', [2, '4g'], /resources: must be an object such as .*got a list/],
    ['null on create', null, /resources: must be an object such as .*got null/],
  ];

  it.each(cases)('%s', (_label, resources, mentions) => {
    expect(taskError(resources)).toMatch(mentions);
    const env = EnvironmentCreate.safeParse({ name: 'sized', resources });
    expect(env.success).toBe(false);
    // In a PATCH, null clears (the size, or one field of it): those two are valid there.
    const clears = resources === null || (typeof resources === 'object' && (resources as { cpus?: unknown }).cpus === null);
    if (!clears) {
      const patch = EnvironmentUpdate.safeParse({ resources });
      expect(patch.success).toBe(false);
      expect(zodToValidationError(patch.error!, 'environment').message).toMatch(/resources/);
    }
  });

  it('reports the field in the error details, for clients that point at it', () => {
    const result = TaskCreate.safeParse({ prompt: 'x', resources: { memory: '5x' } });
    expect(zodToValidationError(result.error!, 'task').details).toMatchObject({ field: 'resources.memory' });
  });

  it('words problems to follow a field or a flag name', () => {
    expect(cpusProblem(2)).toBeUndefined();
    expect(memoryProblem('2g')).toBeUndefined();
    expect(`--cpus ${cpusProblem(0)}`).toMatch(/^--cpus must be at least 0\.01/);
    expect(`--memory ${memoryProblem('lots')}`).toMatch(/^--memory must be a size such as/);
  });
});

/**
 * Property tests of the task and execution lifecycles (protocol/lifecycle.ts): random walks
 * over the transition tables, and the transition functions checked against the tables on
 * every pair of states. The store trusts these functions for every state change it makes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/protocol/errors.js';
import {
  ACTIVE_EXECUTION_STATES,
  EXECUTION_STATES,
  EXECUTION_TRANSITIONS,
  TASK_STATES,
  TASK_TRANSITIONS,
  TERMINAL_EXECUTION_STATES,
  TERMINAL_TASK_STATES,
  canTransitionExecution,
  canTransitionTask,
  transitionExecution,
  transitionTask,
} from '../../src/protocol/lifecycle.js';

interface Machine<S extends string> {
  name: string;
  states: readonly S[];
  initial: S;
  table: Readonly<Record<S, readonly S[]>>;
  terminal: ReadonlySet<S>;
  can: (from: S, to: S) => boolean;
  transition: (from: S, to: S) => S;
}

const machines = [
  {
    name: 'task',
    states: TASK_STATES,
    initial: 'queued',
    table: TASK_TRANSITIONS,
    terminal: TERMINAL_TASK_STATES,
    can: canTransitionTask,
    transition: transitionTask,
  } satisfies Machine<(typeof TASK_STATES)[number]>,
  {
    name: 'execution',
    states: EXECUTION_STATES,
    initial: 'offered',
    table: EXECUTION_TRANSITIONS,
    terminal: TERMINAL_EXECUTION_STATES,
    can: canTransitionExecution,
    transition: transitionExecution,
  } satisfies Machine<(typeof EXECUTION_STATES)[number]>,
] as Array<Machine<string>>;

/** States reachable from `start` by following the table (breadth first). */
function reachable<S extends string>(m: Machine<S>, start: S): Set<S> {
  const seen = new Set<S>([start]);
  const queue: S[] = [start];
  for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
    for (const next of m.table[s]) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return seen;
}

describe.each(machines.map((m) => [m.name, m] as const))('%s lifecycle', (_name, m) => {
  it('random walks from the initial state only ever take allowed transitions, and stop only in a terminal state', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 30 }), (choices) => {
        let state = m.initial;
        for (const choice of choices) {
          const exits = m.table[state]!;
          if (exits.length === 0) {
            expect(m.terminal.has(state)).toBe(true);
            return;
          }
          const next = exits[choice % exits.length]!;
          expect(m.can(state, next)).toBe(true);
          state = m.transition(state, next);
          expect(state).toBe(next);
        }
      }),
    );
  });

  it('the transition function throws a ConflictError exactly on pairs the table does not allow', () => {
    fc.assert(
      fc.property(fc.constantFrom(...m.states), fc.constantFrom(...m.states), (from, to) => {
        const allowed = m.table[from]!.includes(to);
        expect(m.can(from, to)).toBe(allowed);
        if (allowed) {
          expect(m.transition(from, to)).toBe(to);
        } else {
          let thrown: unknown;
          try {
            m.transition(from, to);
          } catch (err) {
            thrown = err;
          }
          expect(thrown).toBeInstanceOf(ConflictError);
          expect(thrown).toMatchObject({ code: 'conflict' });
          // The message names both states, so a log line says what was attempted.
          expect((thrown as Error).message).toContain(`"${from}"`);
          expect((thrown as Error).message).toContain(`"${to}"`);
        }
      }),
      // 49 pairs at most: enough runs to cover every one many times over.
      { numRuns: 500 },
    );
  });

  it('terminal states, and only they, have no way out', () => {
    for (const state of m.states) {
      expect(m.table[state]!.length === 0, `${state}`).toBe(m.terminal.has(state));
      if (m.terminal.has(state)) {
        for (const to of m.states) expect(() => m.transition(state, to)).toThrow(ConflictError);
      }
    }
  });

  it('every state is reachable from the initial state, and every state can still end', () => {
    expect([...reachable(m, m.initial)].sort()).toEqual([...m.states].sort());
    for (const state of m.states) {
      const ends = [...reachable(m, state)].filter((s) => m.terminal.has(s));
      expect(ends.length, `${state} can reach a terminal state`).toBeGreaterThan(0);
    }
  });

  it('has a well-formed table: known states only, no self-transitions, no duplicates', () => {
    expect(Object.keys(m.table).sort()).toEqual([...m.states].sort());
    for (const [from, exits] of Object.entries(m.table)) {
      expect(exits).not.toContain(from);
      expect(new Set(exits).size).toBe(exits.length);
      for (const to of exits) expect(m.states).toContain(to);
    }
  });
});

describe('execution states', () => {
  it('are either active or terminal, never both', () => {
    for (const state of EXECUTION_STATES) {
      expect(ACTIVE_EXECUTION_STATES.includes(state)).toBe(!TERMINAL_EXECUTION_STATES.has(state));
    }
  });

  it('every outcome a leased execution can reach is one its task can reach too (finishExecution copies it)', () => {
    for (const outcome of EXECUTION_TRANSITIONS.running) {
      expect(TASK_TRANSITIONS.running).toContain(outcome);
    }
    for (const outcome of EXECUTION_TRANSITIONS.claimed.filter((s) => s !== 'running')) {
      expect(TASK_TRANSITIONS.assigned).toContain(outcome);
    }
  });
});

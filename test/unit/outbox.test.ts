/**
 * The worker's outbox on a real SQLite file: reports survive a reopen (a restart), come back in
 * order, go away when acknowledged, and seq counters persist with the events that used them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../src/worker/outbox/outbox.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function stateDir() {
  const dir = mkdtempSync(join(tmpdir(), 'al-ob-'));
  dirs.push(dir);
  return dir;
}

const spec = { execution_id: 'exe_aaaaaaaaaaaaaaaaaaaa', task_id: 'tsk_aaaaaaaaaaaaaaaaaaaa', epoch: 2, prompt: 'x', harness: 'shell' as const, timeout_seconds: null, title: null };

describe('outbox', () => {
  it('keeps unacknowledged reports across a reopen, in order, and drops acknowledged ones', () => {
    const dir = stateDir();
    const outbox = new Outbox(dir);
    outbox.rememberExecution(spec, 1);
    outbox.enqueue({ type: 'execution.started', id: 'a', execution_id: spec.execution_id, epoch: 2 });
    outbox.enqueueEvents(spec.execution_id, [{ type: 'execution.events', id: 'b', execution_id: spec.execution_id, epoch: 2, events: [{ seq: 1, ts: 1, kind: 'status', data: {} }] }], 2);
    outbox.enqueue({ type: 'execution.finished', id: 'c', execution_id: spec.execution_id, epoch: 2, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null });
    outbox.ack('a');
    outbox.close();
    const reopened = new Outbox(dir);
    expect(reopened.pending(0, 10).map((p) => p.message.id)).toEqual(['b', 'c']);
    expect(reopened.execution(spec.execution_id)?.nextSeq).toBe(2);
    const [first] = reopened.pending(0, 1);
    expect(reopened.pending(first!.position, 10).map((p) => p.message.id)).toEqual(['c']);
    reopened.ack('b');
    reopened.ack('c');
    reopened.ack('c'); // a repeated ack is harmless
    expect(reopened.size).toBe(0);
    reopened.close();
  });

  it('keeps what a reattached execution needs across a reopen: agent seq (with its events, atomically), tokens and result', () => {
    const dir = stateDir();
    const outbox = new Outbox(dir);
    outbox.rememberExecution(spec, 1);
    expect(outbox.execution(spec.execution_id)).toMatchObject({ agentSeq: 0, taskToken: null, llmToken: null, result: undefined });
    const events = (id: string, seq: number) => ({ type: 'execution.events' as const, id, execution_id: spec.execution_id, epoch: 2, events: [{ seq, ts: 1, kind: 'status' as const, data: {} }] });
    outbox.enqueueEvents(spec.execution_id, [events('e1', 1), events('e2', 2)], 3, 7);
    outbox.enqueueEvents(spec.execution_id, [events('e3', 3)], 4); // the worker's own event: agent seq unchanged
    outbox.saveExecutionState(spec.execution_id, { taskToken: 'tok', llmToken: 'allt.x', result: { outcome: 'succeeded', exit_code: 0, summary: 'done' } });
    outbox.close();
    const reopened = new Outbox(dir);
    expect(reopened.execution(spec.execution_id)).toMatchObject({
      nextSeq: 4,
      agentSeq: 7,
      taskToken: 'tok',
      llmToken: 'allt.x',
      result: { outcome: 'succeeded', exit_code: 0, summary: 'done' },
    });
    expect(reopened.pending(0, 10).map((p) => p.message.id)).toEqual(['e1', 'e2', 'e3']);
    reopened.close();
  });

  it('names the executions that still have reports to deliver, with their epochs', () => {
    const outbox = new Outbox(stateDir());
    const other = { ...spec, execution_id: 'exe_bbbbbbbbbbbbbbbbbbbb', epoch: 5 };
    outbox.enqueue({ type: 'execution.finished', id: 'f', execution_id: spec.execution_id, epoch: 2, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null });
    outbox.enqueue({ type: 'execution.started', id: 's', execution_id: other.execution_id, epoch: 5 });
    outbox.enqueue({ type: 'execution.finished', id: 'g', execution_id: other.execution_id, epoch: 5, outcome: 'failed', exit_code: 1, failure_reason: 'exit_code', message: 'x' });
    expect(outbox.pendingExecutions()).toEqual([
      { execution_id: spec.execution_id, epoch: 2 },
      { execution_id: other.execution_id, epoch: 5 },
    ]);
    outbox.ack('f');
    expect(outbox.pendingExecutions()).toEqual([{ execution_id: other.execution_id, epoch: 5 }]);
    outbox.close();
  });

  it('ignores a repeated report id and drops everything of an execution whose lease was lost', () => {
    const outbox = new Outbox(stateDir());
    outbox.rememberExecution(spec, 1);
    outbox.enqueue({ type: 'execution.started', id: 'a', execution_id: spec.execution_id, epoch: 2 });
    outbox.enqueue({ type: 'execution.started', id: 'a', execution_id: spec.execution_id, epoch: 2 });
    expect(outbox.size).toBe(1);
    outbox.dropExecution(spec.execution_id);
    expect(outbox.size).toBe(0);
    expect(outbox.executions()).toEqual([]);
    outbox.close();
  });
});

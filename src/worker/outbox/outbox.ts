/**
 * The worker's durable outbox: every report (execution started / events / finished) is written
 * here before it is sent, and deleted only when the server acknowledges its id. After a worker
 * or server restart the connection replays what is left, in order; the server treats a repeated
 * id or event seq as a no-op, so delivery is at-least-once and storage exactly-once.
 *
 * It also keeps the worker's own record of the executions it runs (epoch, next event seq,
 * definition) so a restarted worker continues sequence numbers and knows what it left behind.
 *
 * One SQLite file in the state dir, WAL with synchronous=NORMAL: a report survives a crash or
 * kill -9 of the worker the moment `enqueue` returns (power loss may drop the last few
 * transactions — the server then ends those executions as lost, which is still truthful).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ReportMessage } from '../../protocol/worker-messages.js';
import type { ExecutionSpec, Usage } from '../../protocol/task.js';

export interface LocalExecution {
  executionId: string;
  epoch: number;
  /** The next transcript seq to assign (starts at 1). */
  nextSeq: number;
  spec: ExecutionSpec;
  createdAt: number;
  /** The highest event seq of the agent's that is stored (its uploads resume after it). */
  agentSeq: number;
  /** The task gateway's token, which the agent holds: a reattached gateway must accept it again. */
  taskToken: string | null;
  /** The execution's newest token for the control plane's LLM gateway. */
  llmToken: string | null;
  /** The result the agent reported, once it did (the outcome is decided from it at the end). */
  result: unknown;
  /** Model usage metered so far. */
  usage: Usage | undefined;
}

interface OutboxRow {
  position: number;
  body: string;
}

interface ExecutionRow {
  execution_id: string;
  epoch: number;
  next_seq: number;
  spec: string;
  created_at: number;
  agent_seq: number;
  task_token: string | null;
  llm_token: string | null;
  result: string | null;
  usage: string | null;
}

export class Outbox {
  private readonly db: Database.Database;
  private readonly insertStmt: Database.Statement<[string, string, string]>;
  private readonly deleteStmt: Database.Statement<[string]>;
  private readonly pendingStmt: Database.Statement<[number, number], OutboxRow>;
  private readonly countStmt: Database.Statement<[], { n: number }>;
  private readonly setSeqStmt: Database.Statement<[number, string]>;
  private readonly setAgentSeqStmt: Database.Statement<[number, string]>;

  constructor(stateDir: string) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    this.db = new Database(join(stateDir, 'outbox.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS outbox (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        execution_id TEXT NOT NULL,
        body TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS outbox_execution ON outbox (execution_id);
      CREATE TABLE IF NOT EXISTS executions (
        execution_id TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL,
        next_seq INTEGER NOT NULL,
        spec TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
    `);
    // Columns for reattaching to executions that outlive a worker restart (added to older files).
    const columns = new Set(this.db.prepare<[], { name: string }>('PRAGMA table_info(executions)').all().map((c) => c.name));
    for (const [name, type] of [['agent_seq', 'INTEGER NOT NULL DEFAULT 0'], ['task_token', 'TEXT'], ['llm_token', 'TEXT'], ['result', 'TEXT'], ['usage', 'TEXT']] as const) {
      if (!columns.has(name)) this.db.exec(`ALTER TABLE executions ADD COLUMN ${name} ${type}`);
    }
    this.insertStmt = this.db.prepare('INSERT OR IGNORE INTO outbox (id, execution_id, body) VALUES (?, ?, ?)');
    this.deleteStmt = this.db.prepare('DELETE FROM outbox WHERE id = ?');
    this.pendingStmt = this.db.prepare('SELECT position, body FROM outbox WHERE position > ? ORDER BY position LIMIT ?');
    this.countStmt = this.db.prepare('SELECT count(*) AS n FROM outbox');
    this.setSeqStmt = this.db.prepare('UPDATE executions SET next_seq = ? WHERE execution_id = ?');
    this.setAgentSeqStmt = this.db.prepare('UPDATE executions SET agent_seq = max(agent_seq, ?) WHERE execution_id = ?');
  }

  /** Durably store a report; returns its position in the send order. */
  enqueue(message: ReportMessage): void {
    this.insertStmt.run(message.id, message.execution_id, JSON.stringify(message));
  }

  /**
   * Store events reports of one execution and advance its seq counter in one transaction, so a
   * crash can never leave a seq assigned twice or a gap. `agentSeq`, when the events came from
   * the agent, records the agent's last seq in the same transaction: after a restart its uploads
   * resume exactly after what was stored (nothing lost, nothing twice).
   */
  enqueueEvents(executionId: string, messages: ReadonlyArray<ReportMessage & { type: 'execution.events' }>, nextSeq: number, agentSeq?: number): void {
    this.db.transaction(() => {
      for (const message of messages) this.insertStmt.run(message.id, message.execution_id, JSON.stringify(message));
      this.setSeqStmt.run(nextSeq, executionId);
      if (agentSeq !== undefined) this.setAgentSeqStmt.run(agentSeq, executionId);
    })();
  }

  /** Remember what a reattached execution needs: the task token, a renewed LLM token, the agent's result. */
  saveExecutionState(executionId: string, state: { taskToken?: string; llmToken?: string; result?: unknown; usage?: Usage }): void {
    if (state.usage !== undefined) this.db.prepare('UPDATE executions SET usage = ? WHERE execution_id = ?').run(JSON.stringify(state.usage), executionId);
    if (state.taskToken !== undefined) this.db.prepare('UPDATE executions SET task_token = ? WHERE execution_id = ?').run(state.taskToken, executionId);
    if (state.llmToken !== undefined) this.db.prepare('UPDATE executions SET llm_token = ? WHERE execution_id = ?').run(state.llmToken, executionId);
    if (state.result !== undefined) this.db.prepare('UPDATE executions SET result = ? WHERE execution_id = ?').run(JSON.stringify(state.result), executionId);
  }

  ack(id: string): void {
    this.deleteStmt.run(id);
  }

  /** Reports after `position`, in order, at most `limit`. */
  pending(afterPosition: number, limit: number): Array<{ position: number; message: ReportMessage }> {
    return this.pendingStmt.all(afterPosition, limit).map((row) => ({ position: row.position, message: JSON.parse(row.body) as ReportMessage }));
  }

  /**
   * Executions with reports not yet acknowledged. A worker names them in its hello even when
   * they finished locally, so a server that restarted before acknowledging a `finished` keeps
   * the lease and accepts the replay instead of ending the execution as lost.
   */
  pendingExecutions(): Array<{ execution_id: string; epoch: number }> {
    return this.db
      .prepare<[], { execution_id: string; epoch: number }>(
        "SELECT execution_id, json_extract(body, '$.epoch') AS epoch FROM outbox GROUP BY execution_id ORDER BY min(position)",
      )
      .all();
  }

  get size(): number {
    return this.countStmt.get()?.n ?? 0;
  }

  /** The server refused an execution (lease lost): its unsent reports are moot. */
  dropExecution(executionId: string): void {
    this.db.prepare('DELETE FROM outbox WHERE execution_id = ?').run(executionId);
    this.forgetExecution(executionId);
  }

  rememberExecution(spec: ExecutionSpec, now: number): LocalExecution {
    this.db
      .prepare('INSERT OR IGNORE INTO executions (execution_id, epoch, next_seq, spec, created_at) VALUES (?, ?, 1, ?, ?)')
      .run(spec.execution_id, spec.epoch, JSON.stringify(spec), now);
    return this.execution(spec.execution_id)!;
  }

  execution(executionId: string): LocalExecution | undefined {
    const row = this.db.prepare<[string], ExecutionRow>('SELECT * FROM executions WHERE execution_id = ?').get(executionId);
    return row ? toLocal(row) : undefined;
  }

  /** Executions a previous run of this worker started and did not see finish. */
  executions(): LocalExecution[] {
    return this.db.prepare<[], ExecutionRow>('SELECT * FROM executions ORDER BY created_at').all().map(toLocal);
  }

  forgetExecution(executionId: string): void {
    this.db.prepare('DELETE FROM executions WHERE execution_id = ?').run(executionId);
  }

  close(): void {
    this.db.close();
  }
}

function toLocal(row: ExecutionRow): LocalExecution {
  return {
    executionId: row.execution_id,
    epoch: row.epoch,
    nextSeq: row.next_seq,
    spec: JSON.parse(row.spec) as ExecutionSpec,
    createdAt: row.created_at,
    agentSeq: row.agent_seq,
    taskToken: row.task_token,
    llmToken: row.llm_token,
    result: row.result === null ? undefined : (JSON.parse(row.result) as unknown),
    usage: row.usage === null ? undefined : (JSON.parse(row.usage) as Usage),
  };
}

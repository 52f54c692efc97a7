/**
 * Finding and stopping every process of one execution on the host. Two nets, because either
 * alone leaks:
 * - the process groups the backend spawned (detached: the agent, a setup or teardown command,
 *   and what each runs in its group), and
 * - every process whose start environment carries `AIRLOCK_EXECUTION_ID=<id>` — that catches
 *   what left the group (the shell harness's own group, `setsid` daemons), since environments
 *   are inherited. A process that deliberately clears its environment AND leaves the group can
 *   escape: the direct backend shares the host kernel, and its documentation says so.
 *
 * Invariants: never signals the worker itself, its process group, or pid 1. A recorded group is
 * signalled only while it provably is still ours: its leader is alive with the recorded start
 * time, or a member carries the execution's mark; once seen empty it is forgotten (its id may be
 * reused). A single pid is signalled only after re-checking its start time (recycled pids).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  findProcessesWithEnv,
  isLive,
  processGroupMembers,
  readProcStat,
  signalProcess,
  signalProcessGroup,
  type ProcStat,
} from '../../../lib/procfs.js';
import { AGENT_ENV } from '../../../protocol/gateway.js';

/** How often to look whether processes are gone: fast enough that stop() returns promptly. */
const POLL_MS = 50;
/**
 * After SIGKILL, how long to wait for processes to disappear. Only a process stuck in the kernel
 * (D state, e.g. a hung NFS mount) takes longer; we report it rather than wait forever.
 */
const KILL_WAIT_MS = 10_000;

let ownGroup: number | undefined;
async function workerGroup(): Promise<number> {
  ownGroup ??= (await readProcStat(process.pid))?.pgid ?? process.pid;
  return ownGroup;
}

export function executionMark(executionId: string): string {
  return `${AGENT_ENV.executionId}=${executionId}`;
}

export interface ExecutionScan {
  processes: ProcStat[];
  /** Recorded groups that are still provably this execution's. */
  groups: number[];
}

/** The processes of one execution, and how to stop them. */
export class ExecutionProcesses {
  /** Process group id → the start time of its leader when we spawned it. */
  private readonly groups = new Map<number, number | undefined>();

  constructor(readonly executionId: string) {}

  /** Record a process group the backend spawned (its leader's pid), with the leader's start time. */
  addGroup(pgid: number, leaderStartTime: number | undefined): void {
    this.groups.set(pgid, leaderStartTime);
  }

  async scan(): Promise<ExecutionScan> {
    const found = new Map<number, ProcStat>();
    for (const stat of await findProcessesWithEnv(executionMark(this.executionId))) found.set(stat.pid, stat);
    const groups: number[] = [];
    for (const [pgid, leaderStart] of [...this.groups]) {
      const members = await processGroupMembers(pgid);
      const leaderIsOurs = members.some((m) => m.pid === pgid && (leaderStart === undefined || m.startTime === leaderStart));
      if (members.length === 0 || (!leaderIsOurs && !members.some((m) => found.has(m.pid)))) {
        this.groups.delete(pgid);
        continue;
      }
      groups.push(pgid);
      for (const member of members) found.set(member.pid, member);
    }
    found.delete(process.pid);
    return { processes: [...found.values()], groups };
  }

  /** Send `signal` to every process of the execution and to their process groups. */
  async signal(signal: NodeJS.Signals, scan?: ExecutionScan): Promise<ExecutionScan> {
    const current = scan ?? (await this.scan());
    const own = await workerGroup();
    const signalled = new Set<number>();
    for (const group of current.groups) {
      if (group > 1 && group !== own) signalProcessGroup(group, signal);
      signalled.add(group);
    }
    for (const stat of current.processes) {
      if (stat.pid <= 1 || stat.pid === process.pid) continue;
      // Re-check identity right before signalling: the process may have exited and its pid been reused.
      const now = await readProcStat(stat.pid);
      if (!isLive(now) || now.startTime !== stat.startTime) continue;
      if (stat.pgid > 1 && stat.pgid !== own && !signalled.has(stat.pgid) && stat.pgid === stat.pid) {
        signalProcessGroup(stat.pgid, signal); // it leads its own group (setsid): take the group along
        signalled.add(stat.pgid);
      }
      signalProcess(stat.pid, signal);
    }
    return current;
  }

  /**
   * Two-phase stop: SIGTERM, up to `graceMs` for everything to exit, then SIGKILL until gone.
   * `spawnedExited` tells whether the process the backend spawned itself has exited (and been
   * reaped). Resolves with what is still alive at the end (empty when everything is gone).
   */
  async terminate(graceMs: number, spawnedExited: () => boolean = () => true): Promise<ProcStat[]> {
    if (graceMs > 0) {
      await this.signal('SIGTERM');
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline) {
        if (spawnedExited() && (await this.scan()).processes.length === 0) return [];
        await sleep(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
      }
    }
    return this.kill();
  }

  /** SIGKILL everything of the execution (again and again: new processes may appear) until it is gone. */
  async kill(): Promise<ProcStat[]> {
    const deadline = Date.now() + KILL_WAIT_MS;
    for (;;) {
      const scan = await this.scan();
      if (scan.processes.length === 0) return [];
      await this.signal('SIGKILL', scan);
      if (Date.now() > deadline) return scan.processes;
      await sleep(POLL_MS);
    }
  }
}

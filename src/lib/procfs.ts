/**
 * Linux process facts read from /proc: state, parent, process group, session, start time, and
 * the environment a process was started with. Used to stop everything an execution started and
 * to recognise a process after a worker restart without ever killing a recycled pid.
 *
 * Invariants: every reader returns `undefined` for a process that is gone or not ours to read
 * (ENOENT, ESRCH, EACCES) instead of throwing; a zombie (state Z) or dead (X) process counts as
 * gone — it runs no code and only waits for its parent to reap it.
 */
import { readFile, readdir } from 'node:fs/promises';

export interface ProcStat {
  pid: number;
  /** One letter: R running, S sleeping, D disk wait, Z zombie, T stopped, X dead… */
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  /** Start time in clock ticks since boot: with the pid, identifies one process for its lifetime. */
  startTime: number;
}

/** Field numbers in /proc/<pid>/stat (proc(5)), counted from 1, of the fields after `(comm)`. */
const STAT_FIELD = { state: 3, ppid: 4, pgrp: 5, session: 6, starttime: 22 } as const;
/** The first field after "(comm)" is field 3. */
const FIRST_FIELD_AFTER_COMM = 3;

function isGoneError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM' || code === 'ENOTDIR';
}

/** Parse the text of /proc/<pid>/stat. The command name may contain spaces and parentheses. */
export function parseProcStat(pid: number, text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).trim().split(' ');
  const at = (field: number): string | undefined => fields[field - FIRST_FIELD_AFTER_COMM];
  const state = at(STAT_FIELD.state);
  const numbers = [at(STAT_FIELD.ppid), at(STAT_FIELD.pgrp), at(STAT_FIELD.session), at(STAT_FIELD.starttime)].map((v) => Number(v));
  if (!state || numbers.some((n) => !Number.isInteger(n))) return undefined;
  const [ppid, pgid, sid, startTime] = numbers as [number, number, number, number];
  return { pid, state, ppid, pgid, sid, startTime };
}

export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(pid, await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch (err) {
    if (isGoneError(err)) return undefined;
    throw err;
  }
}

/** True when `stat` describes a process that still runs code (not a zombie awaiting its reaper). */
export function isLive(stat: ProcStat | undefined): stat is ProcStat {
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X' && stat.state !== 'x';
}

/** The start time of a live process, or undefined when it is gone or a zombie. */
export async function processStartTime(pid: number): Promise<number | undefined> {
  const stat = await readProcStat(pid);
  return isLive(stat) ? stat.startTime : undefined;
}

/** Pids of every process visible in /proc. */
export async function listPids(): Promise<number[]> {
  const entries = await readdir('/proc');
  const pids: number[] = [];
  for (const entry of entries) {
    if (/^\d+$/.test(entry)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * The environment `pid` was started with (as `NAME=value` strings), or undefined when it is gone
 * or belongs to another user. Later changes a process makes to its own environment are not seen.
 */
export async function readEnviron(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/environ`);
    return raw.toString('utf8').split('\0').filter((entry) => entry.length > 0);
  } catch (err) {
    if (isGoneError(err)) return undefined;
    throw err;
  }
}

/** Live processes whose start environment contains exactly `entry` (a `NAME=value` string). */
export async function findProcessesWithEnv(entry: string): Promise<ProcStat[]> {
  const needle = Buffer.from(`${entry}\0`, 'utf8');
  const found: ProcStat[] = [];
  for (const pid of await listPids()) {
    if (pid === process.pid) continue;
    let raw: Buffer;
    try {
      raw = await readFile(`/proc/${pid}/environ`);
    } catch (err) {
      if (isGoneError(err)) continue;
      throw err;
    }
    // Match whole entries only: at the start of the block or right after a NUL separator.
    const withTerminator = raw.length > 0 && raw[raw.length - 1] !== 0 ? Buffer.concat([raw, Buffer.from([0])]) : raw;
    let index = withTerminator.indexOf(needle);
    while (index > 0 && withTerminator[index - 1] !== 0) index = withTerminator.indexOf(needle, index + 1);
    if (index < 0) continue;
    const stat = await readProcStat(pid);
    if (isLive(stat)) found.push(stat);
  }
  return found;
}

/** Live members of process group `pgid`. */
export async function processGroupMembers(pgid: number): Promise<ProcStat[]> {
  const members: ProcStat[] = [];
  for (const pid of await listPids()) {
    const stat = await readProcStat(pid);
    if (isLive(stat) && stat.pgid === pgid) members.push(stat);
  }
  return members;
}

/**
 * Send `signal` to every process in group `pgid`. Returns false when the group no longer exists.
 * Never throws for a vanished group; rethrows anything else (EPERM means a bug: not our group).
 */
export function signalProcessGroup(pgid: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) throw new Error(`refusing to signal process group ${pgid}: not a valid task process group`);
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** Send `signal` to one process; false when it is gone. */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`refusing to signal pid ${pid}: not a valid task process`);
  try {
    process.kill(pid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

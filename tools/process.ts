/**
 * Process groups: how `bash` and background jobs start a command so that everything it spawns can
 * be found and stopped together, and how a later process recognises one of them after a restart.
 *
 * A command is spawned `detached`, which makes it the leader of a new process group (its pgid is
 * its pid); its children and grandchildren inherit the group unless they leave it on purpose
 * (`setsid`). Stopping sends SIGTERM to the whole group, waits a named grace, then SIGKILL.
 *
 * Linux only for the /proc parts: a pid is recognised by its start time (field 22 of
 * /proc/PID/stat, clock ticks since boot), so a recycled pid is never mistaken for the process
 * recorded earlier. Zombies count as gone: an orphan nobody reaps (PID 1 in some containers does
 * not) must not keep a group "alive" forever.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import {
  PROC_SCAN_ENTRIES_MAX,
  PROCESS_EXIT_WAIT_MS,
  PROCESS_GROUP_POLL_INTERVAL_MS,
  PROCESS_KILL_GRACE_MS,
} from '../core/limits.js';

/** What /proc/PID/stat says about a process. */
export interface ProcStat {
  pid: number;
  /** One letter: R running, S sleeping, D disk wait, Z zombie, T stopped, X dead, … */
  state: string;
  ppid: number;
  pgrp: number;
  /** Clock ticks after boot at which the process started (field 22). */
  startTime: number;
}

/** Parses /proc/PID/stat; undefined when the process does not exist (or /proc is not there). */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces and parentheses.
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  const startTime = Number(fields[19]);
  if (!Number.isFinite(startTime)) return undefined;
  return { pid, state: fields[0] ?? '?', ppid: Number(fields[1]), pgrp: Number(fields[2]), startTime };
}

/** The start time (field 22 of /proc/PID/stat) of a live process; undefined when it cannot be read. */
export function processStartTime(pid: number): number | undefined {
  return readProcStat(pid)?.startTime;
}

const gone = (state: string) => state === 'Z' || state === 'X' || state === 'x';

/**
 * Whether `pid` is a live process (not a zombie) and, when `startTime` is given, the same process
 * that had that start time (a recycled pid is another process). Without /proc, falls back to
 * `kill(pid, 0)` and cannot check the start time.
 */
export function processAlive(pid: number, startTime?: number): boolean {
  const stat = readProcStat(pid);
  if (stat) return !gone(stat.state) && (startTime === undefined || stat.startTime === startTime);
  if (hasProc()) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let procAvailable: boolean | undefined;
function hasProc(): boolean {
  if (procAvailable === undefined) {
    try {
      accessSync('/proc/self/stat', constants.R_OK);
      procAvailable = true;
    } catch {
      procAvailable = false;
    }
  }
  return procAvailable;
}

/** Live (non-zombie) members of process group `pgid`, found by scanning /proc (bounded). */
export function groupMembers(pgid: number): number[] {
  if (!hasProc()) {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const members: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return members;
  }
  let scanned = 0;
  for (const name of entries) {
    if (++scanned > PROC_SCAN_ENTRIES_MAX) break;
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue; // not a pid directory
    const stat = readProcStat(Number(name));
    if (stat && stat.pgrp === pgid && !gone(stat.state)) members.push(stat.pid);
  }
  return members;
}

/** Whether any live process is left in group `pgid`. */
export function groupAlive(pgid: number): boolean {
  return groupMembers(pgid).length > 0;
}

/**
 * Sends `signal` to every process of group `pgid`. Returns false when the group no longer exists.
 * Never signals pgid 0 or 1 (this process's own group, or init): that is a bug, not a request.
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) throw new Error(`refusing to signal process group ${pgid}`);
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    throw error;
  }
}

export interface KillGroupResult {
  /** SIGKILL was needed: something ignored SIGTERM for the whole grace. */
  forced: boolean;
  /** Every member is gone (false only if a process survived SIGKILL for PROCESS_EXIT_WAIT_MS: stuck in the kernel). */
  gone: boolean;
}

/**
 * Stops a whole process group: SIGTERM, up to `graceMs` for it to exit, then SIGKILL, then up to
 * PROCESS_EXIT_WAIT_MS for every member to be gone. Resolves when done; never rejects for a group
 * that is already gone. Use it on timeout, on cancel, and to clear what a finished command left.
 */
export async function killGroup(pgid: number, options: { graceMs?: number } = {}): Promise<KillGroupResult> {
  const graceMs = options.graceMs ?? PROCESS_KILL_GRACE_MS;
  if (!groupAlive(pgid)) return { forced: false, gone: true };
  signalGroup(pgid, 'SIGTERM');
  // A stopped process cannot act on SIGTERM until it is continued.
  signalGroup(pgid, 'SIGCONT');
  if (await waitUntilGone(pgid, graceMs)) return { forced: false, gone: true };
  signalGroup(pgid, 'SIGKILL');
  return { forced: true, gone: await waitUntilGone(pgid, PROCESS_EXIT_WAIT_MS) };
}

async function waitUntilGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (!groupAlive(pgid)) return true;
    if (performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, PROCESS_GROUP_POLL_INTERVAL_MS));
  }
}

/**
 * Spawns `file args` as the leader of a new process group (detached). Throws when the process
 * could not be created (its pid is unknown); a failure to exec the file arrives as the child's
 * 'error' event, as with `spawn`.
 */
export function spawnInGroup(file: string, args: readonly string[], options: Omit<SpawnOptions, 'detached'>): ChildProcess & { pid: number } {
  const child = spawn(file, args, { ...options, detached: true });
  if (child.pid === undefined) {
    // The 'error' event follows; swallow it here, the throw below reports the failure.
    child.once('error', () => {});
    throw new Error(`could not start ${file}`);
  }
  return child as ChildProcess & { pid: number };
}

let shell: string | undefined;

/** The shell commands run in: bash when it is installed, else /bin/sh. */
export function commandShell(): string {
  if (shell === undefined) shell = ['/bin/bash', '/usr/bin/bash', '/usr/local/bin/bash'].find(executable) ?? '/bin/sh';
  return shell;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

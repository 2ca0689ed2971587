/**
 * The crash-torture soak: `npm run torture -- --iterations N` (builds first), or after a build
 * `node dist/bench/torture.js --iterations N [--seed S] [--workers W] [--failpoint-share F]
 * [--nth K] [--json] [--quiet] [--keep]`.
 *
 * Runs N iterations of the harness in test/fixtures/torture.ts (real `loom` processes against the
 * scripted provider): a share F of them (default 0.5) kill at a named failpoint, cycling through
 * every failpoint and firing mostly on its first hit, sometimes on a later one up to K (default 3);
 * the others kill at a random moment.
 * Prints one line per iteration and a summary (iterations, kills, decisions, classifications,
 * invariant violations, time); exits 1 when an invariant was violated. See docs/RECOVERY.md.
 */
import { ALL_FAILPOINTS, runTorture, type TortureSummary } from '../test/fixtures/torture.js';

interface Args {
  iterations: number;
  seed: number;
  workers: number;
  failpointShare: number;
  nth: number;
  json: boolean;
  quiet: boolean;
  keep: boolean;
}

const USAGE = 'usage: torture [--iterations N] [--seed S] [--workers W] [--failpoint-share F] [--nth K] [--json] [--quiet] [--keep]';

function parseArgs(argv: string[]): Args {
  const args: Args = { iterations: 50, seed: Date.now() % 1_000_000_007, workers: 2, failpointShare: 0.5, nth: 3, json: false, quiet: false, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${flag} ${v}: not a non-negative number\n${USAGE}`);
      return n;
    };
    if (flag === '--iterations' || flag === '-n') args.iterations = Math.floor(value());
    else if (flag === '--seed') args.seed = Math.floor(value());
    else if (flag === '--workers') args.workers = Math.max(1, Math.floor(value()));
    else if (flag === '--failpoint-share') args.failpointShare = Math.min(1, value());
    else if (flag === '--nth') args.nth = Math.max(1, Math.floor(value()));
    else if (flag === '--json') args.json = true;
    else if (flag === '--quiet') args.quiet = true;
    else if (flag === '--keep') args.keep = true;
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  return args;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function render(summary: TortureSummary, args: Args): string {
  const count = (o: Record<string, number>) => Object.entries(o).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  const lines = [
    `torture: ${summary.iterations} iterations in ${duration(summary.ms)} (${Math.round(summary.ms / Math.max(1, summary.iterations))} ms each; seed ${args.seed}, ${args.workers} workers)`,
    `  processes      ${summary.processes} loom processes, ${summary.restarts} of them restarts (scan, recover, final prompt)`,
    `  kills          ${summary.kills} SIGKILL: ${summary.failpointKills} at failpoints, ${summary.randomKills} at random moments`,
    `  decisions      ${summary.decisions.retry} retry and ${summary.decisions.abandon} abandon (loom recover ID), ${summary.decisions.automatic} automatic (recorded by Loom)`,
    `  classified     ${count(summary.classifications)}`,
    `  not hit        ${summary.failpointsNotHit.length === 0 ? 'every failpoint fired' : [...new Set(summary.failpointsNotHit)].join(', ')}`,
    `  violations     ${summary.violations.length}${summary.violations.length > 0 ? ` (${count(summary.violationsByInvariant)})` : ''}`,
  ];
  for (const v of summary.violations.slice(0, 20)) lines.push(`    #${v.iteration} ${v.caseName} ${v.invariant} ${v.sessionId ?? ''}: ${v.detail}`);
  if (summary.violations.length > 20) lines.push(`    … ${summary.violations.length - 20} more`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const failpointCases = Math.round(args.iterations * args.failpointShare);
  const failpoints = Array.from({ length: failpointCases }, (_, i) => ALL_FAILPOINTS[i % ALL_FAILPOINTS.length]!);
  if (!args.quiet) process.stderr.write(`torture: ${args.iterations} iterations (${failpointCases} at failpoints, ${args.iterations - failpointCases} random), seed ${args.seed}, ${args.workers} workers\n`);
  const summary = await runTorture({
    seed: args.seed,
    failpoints,
    randomKills: args.iterations - failpointCases,
    workers: args.workers,
    failpointNth: args.nth,
    keep: args.keep,
    log: args.quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
    onViolation: args.quiet ? undefined : (v, events) => process.stderr.write(`  VIOLATION ${v.invariant} ${v.sessionId ?? ''} (home ${v.home}): ${v.detail}\n${events.map((e) => `      ${e}\n`).join('')}`),
  });
  process.stdout.write(args.json ? `${JSON.stringify({ ...summary, seed: args.seed })}\n` : `${render(summary, args)}\n`);
  return summary.violations.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`torture: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);

/**
 * Benchmark entry: `node dist/bench/run.js [suite ...] [--strict]` (`npm run bench` builds first).
 *
 * Loads every suite compiled from `bench/suites/*.ts` (or only the ones named), runs them one after
 * another, prints their tables, and rewrites each suite's own section of `bench/RESULTS.md`
 * (between `<!-- <name>:begin -->` and `<!-- <name>:end -->`; a missing section is appended), so
 * suites owned by different people never overwrite each other.
 *
 * It re-spawns itself once with `--expose-gc` so suites can measure retained memory after a full GC.
 * Target FAILs are recorded and printed; with `--strict` they also make the exit code 1.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gcAvailable, machine, renderConsole, renderMarkdown, type Suite, type SuiteReport } from './lib.js';

const CHILD_FLAG = 'LOOM_BENCH_CHILD';

function projectRoot(): string {
  let dir = import.meta.dirname;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('bench: package.json not found above ' + import.meta.dirname);
    dir = up;
  }
}

const RESULTS_HEADER = `# Benchmarks

Recorded by \`npm run bench\` (all suites) or \`node dist/bench/run.js <suite>...\` after a build.
Each suite owns one section below, between its \`<!-- <name>:begin -->\` / \`<!-- <name>:end -->\`
markers, and a run rewrites only the sections of the suites it ran.
`;

/** Replaces (or appends) the section of `name` in the RESULTS.md text. */
export function upsertSection(text: string, name: string, body: string): string {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${begin}\n${body.trim()}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) return text.slice(0, i) + block + text.slice(j + end.length);
  const base = text.trim() === '' ? RESULTS_HEADER : text.replace(/\s*$/, '\n');
  return `${base}\n${block}\n`;
}

function sectionMarkdown(suite: Suite, report: SuiteReport, date: Date, seconds: number, load: number): string {
  const lines: string[] = [];
  lines.push(`## ${suite.title}`, '');
  lines.push(`Run ${date.toISOString().replace(/\.\d+Z$/, 'Z')} on ${machine()}; 1-minute load average ${load.toFixed(2)} at the start; suite took ${seconds.toFixed(1)} s.`);
  lines.push(`Command: \`node dist/bench/run.js ${suite.name}\`.`, '');
  for (const t of report.tables) lines.push(renderMarkdown(t), '');
  if (report.targets.length > 0) {
    lines.push(
      renderMarkdown({
        title: 'Targets',
        columns: ['target', 'measured', 'required', 'result'],
        rows: report.targets.map((t) => [t.name, t.measured, t.target, t.pass ? 'PASS' : 'FAIL']),
      }),
      '',
    );
  }
  if (report.notes.length > 0) {
    lines.push('Notes:', '');
    for (const n of report.notes) lines.push(`- ${n}`);
  }
  return lines.join('\n');
}

/** Suite files compiled from bench/suites/*.ts, by name (the file name without extension). */
function suiteFiles(): Map<string, string> {
  const dir = join(import.meta.dirname, 'suites');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.js')).sort() : [];
  return new Map(files.map((f) => [basename(f, '.js'), join(dir, f)]));
}

/** Imports only the suites that will run, so one suite's imports never break another's run. */
async function loadSuite(name: string, file: string): Promise<Suite> {
  const mod = (await import(pathToFileURL(file).href)) as { suite?: Suite };
  if (!mod.suite) throw new Error(`bench: ${file} exports no \`suite\``);
  if (mod.suite.name !== name) throw new Error(`bench: ${file} names its suite "${mod.suite.name}", not "${name}"`);
  return mod.suite;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const strict = args.includes('--strict');
  const names = args.filter((a) => !a.startsWith('--'));

  if (!gcAvailable() && process.env[CHILD_FLAG] === undefined) {
    const child = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, process.argv[1]!, ...args], {
      stdio: 'inherit',
      env: { ...process.env, [CHILD_FLAG]: '1' },
    });
    return child.status ?? 1;
  }

  const files = suiteFiles();
  const unknown = names.filter((n) => !files.has(n));
  if (unknown.length > 0) {
    console.error(`bench: unknown suite(s) ${unknown.join(', ')}; available: ${[...files.keys()].join(', ')}`);
    return 2;
  }
  const selectedNames = names.length > 0 ? [...files.keys()].filter((n) => names.includes(n)) : [...files.keys()];
  const resultsPath = join(projectRoot(), 'bench', 'RESULTS.md');
  console.log(`bench: ${machine()}${gcAvailable() ? '' : ' (no --expose-gc: memory figures include garbage)'}`);

  let failed = 0;
  for (const name of selectedNames) {
    const suite = await loadSuite(name, files.get(name)!);
    console.log(`\n== ${suite.title} ==`);
    const started = Date.now();
    const date = new Date();
    const load = loadavg()[0]!;
    const report = await suite.run((line) => console.log(`  ${line}`));
    const seconds = (Date.now() - started) / 1000;
    for (const t of report.tables) console.log('\n' + renderConsole(t));
    if (report.targets.length > 0) {
      console.log(
        '\n' +
          renderConsole({
            title: 'Targets',
            columns: ['target', 'measured', 'required', 'result'],
            rows: report.targets.map((t) => [t.name, t.measured, t.target, t.pass ? 'PASS' : 'FAIL']),
          }),
      );
    }
    console.log(`\n${suite.name}: ${seconds.toFixed(1)} s`);
    failed += report.targets.filter((t) => !t.pass).length;
    const text = existsSync(resultsPath) ? readFileSync(resultsPath, 'utf8') : '';
    writeFileSync(resultsPath, upsertSection(text, suite.name, sectionMarkdown(suite, report, date, seconds, load)));
    console.log(`wrote the ${suite.name} section of ${resultsPath}`);
  }
  if (failed > 0) console.log(`\n${failed} target(s) FAILED`);
  return strict && failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);

// Builds dist/: tsc compiles every module (tests and child processes import them), then esbuild
// bundles the CLI into dist/bundle/ (one file per lazily loaded command) so `loom` loads a few
// files instead of hundreds; better-sqlite3 stays external (a native addon). Last, the inspector
// page's browser bundle goes to dist/inspector-assets/ (app.js, app.css).
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
const strict = !process.argv.includes('--allow-type-errors');
if (tsc.status !== 0 && strict) process.exit(tsc.status ?? 1);

const { build } = await import('esbuild');
rmSync(join(root, 'dist/bundle'), { recursive: true, force: true });
await build({
  entryPoints: [join(root, 'dist/cli/main.js')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  splitting: true,
  outdir: join(root, 'dist/bundle'),
  external: ['better-sqlite3'],
  mainFields: ['module', 'main'],
  logLevel: 'warning',
  banner: { js: "import { createRequire as __loomCreateRequire } from 'node:module'; const require = __loomCreateRequire(import.meta.url);" },
});
// The inspector page's script and styles (served by server/routes/inspector.ts, no CDN).
rmSync(join(root, 'dist/inspector-assets'), { recursive: true, force: true });
await build({
  entryPoints: [join(root, 'server/inspector/page/app.ts'), join(root, 'server/inspector/page/app.css')],
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: ['es2022'],
  minify: true,
  outdir: join(root, 'dist/inspector-assets'),
  logLevel: 'warning',
});
if (tsc.status !== 0) {
  console.warn('build: tsc reported type errors; dist/ was emitted anyway');
  process.exitCode = 1;
}

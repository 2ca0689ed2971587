#!/usr/bin/env node
// The `loom` command. `--version` answers without loading anything heavy; everything else loads
// the bundled CLI (dist/bundle/, built by `npm run build`), which loads SQLite, XState and undici
// only when a command needs them.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(`${pkg.version}\n`);
} else {
  const { main } = await import('../dist/bundle/main.js');
  process.exitCode = await main(process.argv);
}

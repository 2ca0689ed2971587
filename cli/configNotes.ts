import path from 'node:path';
import type { ConfigNote } from '../services/config.js';
import { colorsFor } from './style.js';

const told = new Set<string>();

/**
 * Tells the user, once per file and version in this process, that a config file is older than
 * the current version and what was converted in memory. Always on stderr, so `--json` output on
 * stdout stays clean.
 */
export function printConfigNote(note: ConfigNote, out: NodeJS.WriteStream = process.stderr): void {
  const key = `${note.file}\u0000${note.from}`;
  if (told.has(key)) return;
  told.add(key);
  out.write(formatConfigNote(note, colorsFor(out).yellow('loom: note:')));
}

export function formatConfigNote(note: ConfigNote, prefix = 'loom: note:'): string {
  const version = note.from === 0 ? 'version 0 (no "version" key)' : `version ${note.from}`;
  const migrate = note.scope === 'global' ? 'loom config migrate --global' : `loom config migrate --dir ${path.dirname(path.dirname(note.file))}`;
  return [
    `${prefix} ${note.file} is config ${version}; it was read as version ${note.to} in memory${note.changes.length > 0 ? ':' : '.'}`,
    ...note.changes.map((c) => `  - ${c}`),
    `  \`${migrate}\` rewrites the file at version ${note.to} (keeping a backup).`,
    '',
  ].join('\n');
}

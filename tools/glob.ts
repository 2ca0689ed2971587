/**
 * Glob patterns for the file tools (`glob`'s pattern, `grep`'s include, `list`'s ignore), matched
 * with picomatch against paths relative to the directory searched, `/`-separated. A pattern
 * without a `/` matches a name at any depth (`*.ts` finds `src/a.ts`), as in .gitignore and
 * ripgrep's `--glob`; names starting with a dot match like any other.
 */
import picomatch from 'picomatch';
import { GLOB_PATTERN_CHARS_MAX } from '../core/limits.js';
import { InvalidGlobError } from './errors.js';

/** A compiled pattern: true when a relative path matches. */
export type GlobMatcher = (relPath: string) => boolean;

/**
 * Compiles `pattern`, refusing (InvalidGlobError) an empty or over-long one, an absolute one and
 * one with a `..` segment: patterns select paths beneath the directory searched, never above it.
 */
export function compileGlob(pattern: string): GlobMatcher {
  checkPattern(pattern);
  return picomatch(pattern, { dot: true, basename: !pattern.includes('/') });
}

function checkPattern(pattern: string): void {
  if (pattern.trim() === '') throw new InvalidGlobError(pattern, 'it is empty');
  if (pattern.length > GLOB_PATTERN_CHARS_MAX) throw new InvalidGlobError(pattern, `it is longer than ${GLOB_PATTERN_CHARS_MAX} characters`);
  if (pattern.includes('\0')) throw new InvalidGlobError(pattern, 'it contains a NUL byte');
  if (pattern.startsWith('/')) {
    throw new InvalidGlobError(pattern, 'it is absolute; patterns are relative to the directory searched (set "path" to choose it)');
  }
  if (pattern.split('/').includes('..')) {
    throw new InvalidGlobError(pattern, 'it climbs out with ".."; set "path" to the directory to search instead');
  }
}

/** How the file tools show paths to the model: relative to the session directory, `/`-separated. */
import path from 'node:path';

/** `target` relative to `realLocation` (both real paths), `.` for the location itself. */
export function relativeTo(realLocation: string, target: string): string {
  const rel = path.relative(realLocation, target);
  return rel === '' ? '.' : rel.split(path.sep).join('/');
}

/** `relPath` (relative to a directory shown as `base`) as a path relative to the location. */
export function under(base: string, relPath: string): string {
  return base === '.' ? relPath : `${base}/${relPath}`;
}

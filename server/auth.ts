import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { SERVER_TOKEN_BYTES } from '../core/limits.js';

/** The cookie `POST /auth/cookie` sets, for a browser's EventSource (which cannot send headers). */
export const AUTH_COOKIE = 'loom_session';

/** The file in $LOOM_HOME holding the generated token. */
export const TOKEN_FILE_NAME = 'server-token';

export class ServerTokenError extends Error {
  override name = 'ServerTokenError';
}

export class BindRefusedError extends Error {
  override name = 'BindRefusedError';
  constructor(readonly host: string) {
    super(
      `refusing to listen on ${host} with a generated token: set LOOM_SERVER_TOKEN or pass --token-file FILE to choose the token explicitly (only 127.0.0.1/localhost/::1 are allowed without)`,
    );
  }
}

export interface ServerToken {
  token: string;
  /** Set by the user (LOOM_SERVER_TOKEN or --token-file), not generated: required to bind another host. */
  explicit: boolean;
  /** Where it came from, for the startup line (never the token itself). */
  source: string;
}

/**
 * The server's bearer token: `LOOM_SERVER_TOKEN`, else the file given with `--token-file`, else
 * `$LOOM_HOME/server-token`, generated on first start (random, hex, created with O_EXCL and mode
 * 0600). A token file readable by group or others is refused: anyone who reads it owns the API.
 */
export function loadServerToken(home: string, options: { env?: NodeJS.ProcessEnv; tokenFile?: string } = {}): ServerToken {
  const env = options.env ?? process.env;
  const fromEnv = env.LOOM_SERVER_TOKEN;
  if (fromEnv !== undefined && fromEnv !== '') {
    checkTokenText(fromEnv, 'LOOM_SERVER_TOKEN');
    return { token: fromEnv, explicit: true, source: 'LOOM_SERVER_TOKEN' };
  }
  if (options.tokenFile !== undefined) return { token: readTokenFile(options.tokenFile), explicit: true, source: options.tokenFile };
  const file = join(home, TOKEN_FILE_NAME);
  try {
    const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    const token = randomBytes(SERVER_TOKEN_BYTES).toString('hex');
    try {
      writeSync(fd, `${token}\n`);
    } finally {
      closeSync(fd);
    }
    return { token, explicit: false, source: file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return { token: readTokenFile(file), explicit: false, source: file };
}

/** The token a client uses: LOOM_SERVER_TOKEN, else $LOOM_HOME/server-token (undefined when neither exists). */
export function clientToken(home: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.LOOM_SERVER_TOKEN) return env.LOOM_SERVER_TOKEN;
  try {
    return readFileSync(join(home, TOKEN_FILE_NAME), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function readTokenFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    throw new ServerTokenError(`cannot read the server token file ${file}: ${(error as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if ((st.mode & 0o077) !== 0) throw new ServerTokenError(`the server token file ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    const token = readFileSync(fd, 'utf8').trim();
    checkTokenText(token, file);
    return token;
  } finally {
    closeSync(fd);
  }
}

function checkTokenText(token: string, source: string): void {
  if (token.length < 16) throw new ServerTokenError(`the server token from ${source} is ${token.length} characters; use at least 16`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new ServerTokenError(`the server token from ${source} must be printable ASCII without spaces`);
}

/**
 * Constant-time comparison of a presented token with the server's. Both are hashed first, so the
 * comparison takes the same time whatever the presented length.
 */
export function tokenMatches(presented: string | undefined, token: string): boolean {
  if (presented === undefined) return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/** The bearer token of an `Authorization: Bearer T` header. */
export function bearerOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header);
  return m?.[1];
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host.toLowerCase());
}

export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/**
 * The Host header values a request may carry (DNS rebinding: a page on evil.example that resolves
 * its name to 127.0.0.1 still sends `Host: evil.example`). For a loopback bind: 127.0.0.1, localhost
 * and [::1] at the bound port; for another address: that address; for a wildcard bind: this
 * machine's host name and interface addresses; plus any `extra` names (--allow-host).
 */
export function allowedHosts(boundHost: string, port: number, extra: readonly string[] = []): Set<string> {
  const names = new Set<string>();
  const add = (h: string) => {
    const host = h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
    names.add(`${host.toLowerCase()}:${port}`);
    if (port === 80) names.add(host.toLowerCase());
  };
  if (isLoopbackHost(boundHost)) ['127.0.0.1', 'localhost', '::1'].forEach(add);
  else if (isWildcardHost(boundHost)) {
    ['127.0.0.1', 'localhost', '::1', hostname()].forEach(add);
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) add(a.address);
  } else add(boundHost);
  for (const h of extra) add(h);
  return names;
}

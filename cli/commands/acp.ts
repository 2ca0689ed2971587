import { Readable } from 'node:stream';
import { ndJsonStream } from '@agentclientprotocol/sdk';
import { LoomAcpAgent } from '../../acp/agent.js';
import { natsUrlFromEnv } from '../../actors/nats.js';
import { ACP_MESSAGE_BYTES_MAX } from '../../core/limits.js';
import { loomVersion } from '../../core/version.js';
import { resolveLoomHome } from '../../services/config.js';
import { openLoomRuntime } from '../../services/runtime.js';
import { EXIT } from '../exit.js';
import { DEFAULT_MODEL } from './run.js';

/**
 * `loom acp`: serves one ACP client (an editor) on stdin/stdout until stdin closes or a signal
 * comes (acp/agent.ts). stdout carries protocol messages only: anything else that would write to
 * it goes to stderr instead. Permission asks go to the client; MCP servers connect at once.
 */
export async function acpCommand(): Promise<number> {
  const protocolOut = protectStdout();
  let agent: LoomAcpAgent | undefined;
  const runtime = openLoomRuntime({
    home: resolveLoomHome(),
    natsUrl: natsUrlFromEnv(),
    processName: `loom acp ${process.pid}`,
    asker: (ask) => agent!.ask(ask),
    onSessionFailure: (sessionId, error) => agent?.sessionFailed(sessionId, error),
    mcp: 'eager',
  });
  agent = new LoomAcpAgent({
    runtime,
    version: loomVersion(),
    defaultModel: DEFAULT_MODEL,
    log: (line) => process.stderr.write(`loom acp: ${line}\n`),
  });
  const input = Readable.toWeb(process.stdin) as unknown as ReadableStream<Uint8Array>;
  const connection = agent.connect(ndJsonStream(protocolOut, input, { maxMessageBytes: ACP_MESSAGE_BYTES_MAX }));
  const onSignal = () => connection.close();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await connection.closed;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await agent.close();
    runtime.close();
    process.stdin.destroy(); // nothing more is read; let the process end
  }
  return EXIT.ok;
}

/**
 * The protocol's stream onto the real stdout, and `process.stdout.write` turned to stderr, so no
 * stray write (a library's console.log) can corrupt the protocol.
 */
function protectStdout(): WritableStream<Uint8Array> {
  const write = process.stdout.write.bind(process.stdout) as (chunk: Uint8Array, callback: (error?: Error | null) => void) => boolean;
  process.stdout.write = process.stderr.write.bind(process.stderr) as typeof process.stdout.write;
  return new WritableStream<Uint8Array>({
    write: (chunk) => new Promise<void>((resolve, reject) => void write(chunk, (error) => (error ? reject(error) : resolve()))),
  });
}

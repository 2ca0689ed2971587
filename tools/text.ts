/**
 * Text helpers the file tools share: telling a binary file from a text file, and decoding text.
 * `read` and `edit` use the same rule so a file one of them refuses the other refuses too.
 */
import type { FileHandle } from 'node:fs/promises';
import { READ_BINARY_SNIFF_BYTES, READ_CHUNK_BYTES } from '../core/limits.js';
import { BinaryFileError } from './errors.js';

/**
 * True when `bytes` look binary: a NUL byte within the first READ_BINARY_SNIFF_BYTES (the
 * heuristic git and grep use). Pass the file's first bytes; later bytes are not looked at.
 */
export function looksBinary(bytes: Uint8Array): boolean {
  return bytes.subarray(0, READ_BINARY_SNIFF_BYTES).includes(0);
}

/** UTF-8 with a leading byte-order mark dropped; invalid sequences become U+FFFD. */
export function decodeText(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Reads the file's first `size` bytes (what fstat saw; growth since is ignored, so memory stays
 * bounded), refusing it as binary as soon as its first bytes are in.
 */
export async function readWhole(handle: FileHandle, size: number, path: string, signal: AbortSignal): Promise<Buffer> {
  const buffer = Buffer.alloc(size);
  const sniffBytes = Math.min(size, READ_BINARY_SNIFF_BYTES);
  let filled = 0;
  let sniffed = false;
  while (filled < size) {
    signal.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, filled, Math.min(READ_CHUNK_BYTES, size - filled), filled);
    if (bytesRead === 0) break; // the file shrank while we read it
    filled += bytesRead;
    if (!sniffed && filled >= sniffBytes) {
      sniffed = true;
      if (looksBinary(buffer.subarray(0, sniffBytes))) throw new BinaryFileError(path);
    }
  }
  const bytes = buffer.subarray(0, filled);
  if (!sniffed && looksBinary(bytes)) throw new BinaryFileError(path);
  return bytes;
}

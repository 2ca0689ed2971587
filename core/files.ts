import type { FileHandle } from 'node:fs/promises';

/**
 * The first `size` bytes of an open file (callers pass the size fstat saw, or a bound below it),
 * so a file growing meanwhile cannot grow memory. Fewer when the file shrank.
 */
export async function readUpTo(handle: FileHandle, size: number): Promise<Buffer> {
  const buffer = Buffer.alloc(size);
  let filled = 0;
  while (filled < size) {
    const { bytesRead } = await handle.read(buffer, filled, size - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

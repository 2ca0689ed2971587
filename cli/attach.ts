import { realpathSync } from 'node:fs';
import type { InputAttachment } from '../store/schemas.js';
import { AttachmentError, materializeAttachments } from '../tools/attachments.js';
import { isInside } from '../tools/confine.js';
import { UsageError } from './exit.js';

/**
 * `--attach` for `run` and `prompt`: materialises the attachments before anything is stored. A
 * relative path is taken from the working directory when that lies inside the session directory
 * (`location`), else from the session directory; either way the file must be inside it. A refusal
 * is a usage error (exit 2) naming the attachment; nothing was admitted.
 */
export async function attachmentsFor(location: string, specs: readonly string[] | undefined): Promise<InputAttachment[] | undefined> {
  if (specs === undefined || specs.length === 0) return undefined;
  try {
    const cwd = realpathSync(process.cwd());
    return await materializeAttachments(location, specs, new AbortController().signal, { cwd: isInside(location, cwd) ? cwd : location });
  } catch (error) {
    if (error instanceof AttachmentError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}

import type { ChatMessage } from '../llm/types.js';
import type { MessageView } from '../store/queries.js';
import type { InputAttachment } from '../store/schemas.js';

/**
 * Builds the provider-neutral conversation from the projected history. Discarded attempts are
 * already absent; every tool call the model made gets its result (an unsettled one is reported
 * as interrupted, so the provider never sees a call without a result).
 *
 * After a compaction, `conversation` holds only the messages after its boundary and `summary`
 * stands for everything before it: it goes first, as a user message of its own (actors/compaction.ts).
 */
export function buildMessages(conversation: MessageView[], systemPrompt?: string, summary?: string): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (systemPrompt) messages.push({ role: 'system', content: systemPrompt });
  if (summary !== undefined) messages.push({ role: 'user', content: summaryMessage(summary) });
  for (const m of conversation) {
    if (m.role === 'user') {
      messages.push({ role: 'user', content: withAttachments(m.text ?? '', m.attachments ?? []) });
      continue;
    }
    const text = m.parts.filter((p) => p.kind === 'text').map((p) => p.text).join('');
    const reasoningParts = m.parts.filter((p) => p.kind === 'reasoning');
    const reasoning = reasoningParts.map((p) => p.text).join('');
    const metadata = m.parts.find((p) => p.providerMetadata)?.providerMetadata;
    if (text === '' && reasoning === '' && m.toolCalls.length === 0) continue;
    messages.push({
      role: 'assistant',
      content: text,
      ...(reasoning ? { reasoning } : {}),
      ...(metadata ? { providerMetadata: metadata } : {}),
      ...(m.toolCalls.length > 0
        ? {
            toolCalls: m.toolCalls.map((c) => ({
              id: c.providerCallId,
              name: c.tool,
              arguments: c.input,
              ...(c.providerMetadata ? { providerMetadata: c.providerMetadata } : {}),
            })),
          }
        : {}),
    });
    for (const c of m.toolCalls) {
      messages.push({
        role: 'tool',
        toolCallId: c.providerCallId,
        name: c.tool,
        content: c.state === 'settled' ? (c.output ?? '') : 'The tool call was interrupted before it finished.',
        isError: c.status !== 'ok',
      });
    }
  }
  return messages;
}

/** The user message that stands for the compacted part of the conversation. */
export function summaryMessage(summary: string): string {
  return `<conversation-summary>\nThe conversation before this point was compacted to save context; this is its summary:\n\n${summary}\n</conversation-summary>`;
}

/**
 * The user message's text followed by one block per attachment, resolved at admission:
 * `<attachment kind="file" name="src/a.ts" type="text/plain">…</attachment>`.
 */
export function withAttachments(text: string, attachments: readonly InputAttachment[]): string {
  if (attachments.length === 0) return text;
  const blocks = attachments.map(
    (a) => `<attachment kind="${a.kind}" name="${attribute(a.name)}" type="${attribute(a.mediaType)}">\n${a.text}${a.text.endsWith('\n') ? '' : '\n'}</attachment>`,
  );
  return [text, ...blocks].join('\n\n');
}

function attribute(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}

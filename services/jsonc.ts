/**
 * JSONC documents (JSON with comments and trailing commas) as config files use them: parsing with
 * positions, finding the line of a key, and rewriting a document to a new value while keeping
 * its comments and layout wherever the value did not change. All parsing is jsonc-parser's.
 */
import { applyEdits, createScanner, findNodeAtLocation, modify, parse, parseTree, printParseErrorCode, SyntaxKind, type FormattingOptions, type JSONPath, type Node, type ParseError, type ParseOptions } from 'jsonc-parser';
import { isDeepStrictEqual } from 'node:util';

const OPTIONS: ParseOptions = { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false };

/** A 1-based position in a text. */
export interface TextPosition {
  line: number;
  column: number;
}

/** The first syntax error of a JSONC text. */
export interface JsoncSyntaxError extends TextPosition {
  /** "comma expected", "value expected", … */
  detail: string;
}

/**
 * Parses JSONC. Returns the value, or the first syntax error with its position. Throws
 * RangeError for a document nested too deeply for the parser's recursion.
 */
export function parseJsonc(text: string): { value: unknown; error?: undefined } | { value?: undefined; error: JsoncSyntaxError } {
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, OPTIONS);
  if (errors.length === 0) return { value };
  const first = errors[0];
  return { error: { ...positionAt(text, first.offset), detail: describeParseError(first) } };
}

function describeParseError(error: ParseError): string {
  // "CommaExpected" → "comma expected"
  return printParseErrorCode(error.error)
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toLowerCase();
}

/** The 1-based line and column of a character offset. */
export function positionAt(text: string, offset: number): TextPosition {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * Where the key at `path` is written (`['limits', 'turnLimit']` → the line of `"turnLimit":`).
 * A path that is not in the document (a missing required key, a key a migration renamed) falls
 * back to its nearest ancestor that is. Undefined for an empty text.
 */
export function locateJsonPath(text: string, path: readonly (string | number)[]): TextPosition | undefined {
  const root = parseTree(text, [], OPTIONS);
  if (root === undefined) return undefined;
  for (let n = path.length; n >= 0; n--) {
    const node = findNodeAtLocation(root, path.slice(0, n) as JSONPath);
    if (node === undefined) continue;
    // A property's value: point at its key, where the reader looks.
    const at = node.parent?.type === 'property' ? node.parent : node;
    return positionAt(text, at.offset);
  }
  return undefined;
}

/**
 * Rewrites `text` (whose parsed value is `from`) so it parses to `to`, changing only what
 * differs: unchanged keys keep their comments and layout, removed keys go with the comment
 * lines directly above them and a comment at the end of their line, new keys are inserted with
 * the file's indentation (a `version` key first). Returns undefined when the edited text would
 * not parse back to exactly `to` (the caller then prints the value afresh).
 */
export function editJsonc(text: string, from: unknown, to: unknown): string | undefined {
  const format = detectFormatting(text);
  let out = text;
  try {
    for (const change of diffValues([], from, to)) {
      out = change.kind === 'remove' ? removeProperty(out, change.path, format) : setValue(out, change.path, change.value, format);
    }
  } catch {
    return undefined;
  }
  const back = parseJsonc(out);
  return back.error === undefined && isDeepStrictEqual(back.value, to) ? out : undefined;
}

type Change = { kind: 'remove'; path: JSONPath } | { kind: 'set'; path: JSONPath; value: unknown };

/** Removals first (so a rename does not leave two keys side by side), then additions and changes. */
function diffValues(path: JSONPath, from: unknown, to: unknown): Change[] {
  if (isPlainObject(from) && isPlainObject(to)) {
    const removals: Change[] = [];
    const sets: Change[] = [];
    for (const key of Object.keys(from)) if (!(key in to)) removals.push({ kind: 'remove', path: [...path, key] });
    for (const [key, value] of Object.entries(to)) {
      if (key in from) {
        for (const c of diffValues([...path, key], from[key], value)) (c.kind === 'remove' ? removals : sets).push(c);
      } else {
        sets.push({ kind: 'set', path: [...path, key], value });
      }
    }
    return [...removals, ...sets];
  }
  return isDeepStrictEqual(from, to) ? [] : [{ kind: 'set', path, value: to }];
}

function setValue(text: string, path: JSONPath, value: unknown, formattingOptions: FormattingOptions): string {
  const first = path.length === 1 && path[0] === 'version';
  return applyEdits(text, modify(text, path, value, { formattingOptions, getInsertionIndex: first ? () => 0 : undefined }));
}

/**
 * Removes one property with what belongs to it: the comma after it (or, for the last property,
 * the comma before it), a comment at the end of its line, and whole-line comments directly above
 * it. jsonc-parser's own removal also takes the comment at the end of the previous line.
 */
function removeProperty(text: string, path: JSONPath, formattingOptions: FormattingOptions): string {
  const root = parseTree(text, [], OPTIONS);
  const value = root && findNodeAtLocation(root, path);
  const property = value?.parent;
  const object = property?.parent;
  if (!property || property.type !== 'property' || !object) return applyEdits(text, modify(text, path, undefined, { formattingOptions }));
  const siblings = object.children ?? [];
  const index = siblings.indexOf(property);
  let start = property.offset;
  let end = property.offset + property.length;
  const next = siblings[index + 1];
  const afterEnd = next ? next.offset : object.offset + object.length - 1;
  const comma = findComma(text, end, afterEnd);
  let leadingComma: number | undefined;
  if (comma !== undefined) {
    end = comma + 1;
  } else if (index > 0) {
    const prev = siblings[index - 1];
    leadingComma = findComma(text, prev.offset + prev.length, property.offset);
  }
  // A comment at the end of the property's line is about the property.
  end = skipTrailingComment(text, end);
  const lineStart = text.lastIndexOf('\n', start - 1) + 1;
  const lineEnd = indexOrEnd(text, '\n', end);
  if (text.slice(lineStart, start).trim() === '' && text.slice(end, lineEnd).trim() === '') {
    start = commentLinesAbove(text, lineStart);
    end = Math.min(text.length, lineEnd + 1);
  }
  const out = splice(text, start, end, '');
  return leadingComma !== undefined && leadingComma < start ? splice(out, leadingComma, leadingComma + 1, '') : out;
}

/** The offset of the comma token between `from` and `to` (comments skipped), if any. */
function findComma(text: string, from: number, to: number): number | undefined {
  const scanner = createScanner(text.slice(from, to), false);
  for (let kind = scanner.scan(); kind !== SyntaxKind.EOF; kind = scanner.scan()) {
    if (kind === SyntaxKind.CommaToken) return from + scanner.getTokenOffset();
  }
  return undefined;
}

function skipTrailingComment(text: string, from: number): number {
  const lineEnd = indexOrEnd(text, '\n', from);
  const rest = text.slice(from, lineEnd);
  const m = /^[ \t]*(\/\/.*|\/\*.*?\*\/[ \t]*)$/.exec(rest);
  return m ? lineEnd : from;
}

/** The start of the run of whole-line `//` comments directly above the line starting at `lineStart`. */
function commentLinesAbove(text: string, lineStart: number): number {
  let start = lineStart;
  while (start > 0) {
    const prevStart = text.lastIndexOf('\n', start - 2) + 1;
    if (!/^[ \t]*\/\/.*\r?\n$/.test(text.slice(prevStart, start))) break;
    start = prevStart;
  }
  return start;
}

function indexOrEnd(text: string, needle: string, from: number): number {
  const i = text.indexOf(needle, from);
  return i === -1 ? text.length : i;
}

function splice(text: string, start: number, end: number, insert: string): string {
  return text.slice(0, start) + insert + text.slice(end);
}

/** The file's own indentation and line ending, so inserted keys look like their neighbours. */
export function detectFormatting(text: string): FormattingOptions {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const indent = /\n([ \t]+)["/]/.exec(text)?.[1];
  if (indent?.startsWith('\t')) return { insertSpaces: false, tabSize: 1, eol };
  return { insertSpaces: true, tabSize: indent === undefined ? 2 : Math.min(indent.length, 8), eol };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export type { Node as JsoncNode };

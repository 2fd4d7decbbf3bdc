/**
 * The XML WeChat speaks: one `<xml>` root, child elements, text mostly in CDATA.
 *
 * Parsing keeps every value a string exactly as sent (MsgId is 64-bit, "00123" is not 123), ignores
 * attributes, tolerates the control characters real traffic carries (\x02, \x10, \x1d), refuses DTDs
 * before the parser sees them, and refuses documents nested too deeply or with too many elements
 * (checked on xml2js's tree, which it builds without recursion; the HTTP body limit bounds its size).
 */
import { Parser } from 'xml2js';
import { InvalidInputError } from '../errors';

/** A parsed element is its text (a leaf), its children (by tag), or, for a repeated tag, every occurrence. */
export type XmlNode = string | XmlElement | XmlNode[];
/** Children by tag name. Always a null-prototype object. */
export interface XmlElement {
  [tag: string]: XmlNode;
}

/** What `buildWeChatXml` renders: strings in CDATA, numbers bare, arrays as repeated tags, undefined skipped. */
export type XmlBuildValue = string | number | XmlBuildFields | readonly XmlBuildValue[] | undefined;
export interface XmlBuildFields {
  readonly [tag: string]: XmlBuildValue;
}

export const MAX_XML_DEPTH = 8; // <xml> is level 1; WeChat's deepest (SendPicsInfo/PicList/item/PicMd5Sum) is 5
export const MAX_XML_ELEMENTS = 500;

// Tag names that would turn into prototype plumbing on a plain object; they are dropped, never exposed.
const FORBIDDEN_TAGS = new Set(['__proto__', 'constructor', 'prototype']);

// xml2js stores a node's text under `_`, a CDATA flag under `cdata`, and looks children up with `in`
// (which sees Object.prototype members such as `toString`). Prefixing every tag name with a character that
// cannot start an XML name keeps real tags apart from all three; the prefix is removed when converting.
const TAG_PREFIX = '<';

/** Thrown from the parser's error listener to abandon the document at its first error. */
/** Thrown to stop sax; an Error, so that whatever catches it sees one. */
const STOP_PARSING = new Error('stop parsing');

/** Parses a WeChat XML document and returns the children of its `<xml>` root. Synchronous. */
export function parseWeChatXml(text: string): XmlElement {
  if (typeof text !== 'string') throw invalid('XML body must be text');
  rejectDoctype(text);

  const parser = new Parser({
    explicitArray: false, // a single child is a value, a repeated one an array
    explicitRoot: true,
    ignoreAttrs: true,
    async: false,
    strict: true,
    tagNameProcessors: [(name: string) => TAG_PREFIX + name],
  });
  // Without a callback xml2js does not reset itself after the first root closes, so a second root or
  // trailing text still reaches these listeners and is rejected instead of silently ignored.
  const roots: unknown[] = [];
  let failure: unknown;
  parser.on('end', (result: unknown) => roots.push(result));
  // Stop at the first error. xml2js resumes sax after an error and sax then builds a new Error for
  // every following character it cannot use, so 64 KiB of junk cost ~0.4 s of event loop. Throwing
  // here unwinds sax.write; xml2js swallows the throw (its error flag is already set) or our catch does.
  parser.on('error', (error: unknown) => {
    failure ??= error;
    throw STOP_PARSING;
  });
  try {
    parser.parseString(text);
  } catch (error) {
    failure ??= error;
  }
  if (failure !== undefined || roots.length !== 1) throw invalid('XML is not well-formed', failure);

  const root = roots[0];
  if (root === null || typeof root !== 'object') throw invalid('XML document is empty');
  const rootTag = Object.keys(root)[0];
  if (rootTag !== `${TAG_PREFIX}xml`) throw invalid('XML root element must be <xml>');
  const children = (root as Record<string, unknown>)[rootTag];
  const budget = { elements: 1 };
  if (children !== null && typeof children === 'object' && !Array.isArray(children)) {
    return toElement(children as Record<string, unknown>, 2, budget);
  }
  return Object.create(null) as XmlElement; // `<xml/>` or `<xml>text</xml>`: no fields
}

/**
 * Renders `<xml>…</xml>`: strings as CDATA (a `]]>` inside is split across two sections), numbers bare,
 * objects as nested elements, arrays as repeated tags. No whitespace is added between elements.
 */
export function buildWeChatXml(fields: XmlBuildFields): string {
  return `<xml>${renderChildren(fields)}</xml>`;
}

function renderChildren(fields: XmlBuildFields): string {
  let out = '';
  for (const [tag, value] of Object.entries(fields)) out += renderElement(tag, value);
  return out;
}

function renderElement(tag: string, value: XmlBuildValue): string {
  if (value === undefined) return '';
  if (!XML_NAME.test(tag)) throw new TypeError(`not a valid XML tag name: ${JSON.stringify(tag)}`);
  if (Array.isArray(value)) return (value as readonly XmlBuildValue[]).map((item) => renderElement(tag, item)).join('');
  if (typeof value === 'string') return `<${tag}>${cdata(value)}</${tag}>`;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`<${tag}> must be a finite number`);
    return `<${tag}>${String(value)}</${tag}>`;
  }
  return `<${tag}>${renderChildren(value as XmlBuildFields)}</${tag}>`;
}

const XML_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function cdata(text: string): string {
  return `<![CDATA[${text.replaceAll(']]>', ']]]]><![CDATA[>')}]]>`;
}

// A DTD is the only way to declare entities (billion laughs, external entities). It is legal only before
// the root element, and sax rejects one anywhere else, so scanning markup outside CDATA sections is enough;
// a user's text that merely *contains* "<!DOCTYPE" arrives in CDATA and passes. Linear: indexOf only.
function rejectDoctype(text: string): void {
  let at = 0;
  for (;;) {
    const open = text.indexOf('<!', at);
    if (open < 0) return;
    if (text.startsWith('<![CDATA[', open)) {
      const close = text.indexOf(']]>', open + 9);
      if (close < 0) return; // unterminated: the parser reports it
      at = close + 3;
      continue;
    }
    const keyword = text.slice(open + 2, open + 9).toUpperCase();
    if (keyword === 'DOCTYPE' || keyword.startsWith('ENTITY')) {
      throw invalid('XML DTDs and entity declarations are not allowed');
    }
    at = open + 2;
  }
}

// Copies xml2js's tree into null-prototype objects, stripping the tag prefix, dropping text mixed in
// beside child elements (WeChat never sends it) and enforcing the depth and size limits. The recursion
// stops at MAX_XML_DEPTH, so a 1000-deep document costs nine stack frames.
function toElement(source: Record<string, unknown>, depth: number, budget: { elements: number }): XmlElement {
  const element = Object.create(null) as XmlElement;
  for (const key of Object.keys(source)) {
    if (!key.startsWith(TAG_PREFIX)) continue; // xml2js's own `_` (mixed text) and `cdata` keys
    const tag = key.slice(TAG_PREFIX.length);
    if (FORBIDDEN_TAGS.has(tag)) continue;
    const node = toNode(source[key], depth, budget);
    if (node !== undefined) element[tag] = node;
  }
  return element;
}

function toNode(value: unknown, depth: number, budget: { elements: number }): XmlNode | undefined {
  if (Array.isArray(value)) {
    const nodes: XmlNode[] = [];
    for (const item of value) {
      const node = toNode(item, depth, budget);
      if (node !== undefined) nodes.push(node);
    }
    return nodes;
  }
  if (depth > MAX_XML_DEPTH) throw invalid('XML is nested too deeply');
  if (++budget.elements > MAX_XML_ELEMENTS) throw invalid('XML has too many elements');
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object') return toElement(value as Record<string, unknown>, depth + 1, budget);
  return undefined;
}

function invalid(message: string, cause?: unknown): InvalidInputError {
  return new InvalidInputError(400, message, cause === undefined ? {} : { cause });
}

// Node's own llhttp binding, the parser behind node:http. It is strict (it
// rejects bad chunking, duplicate Content-Length, CL+TE, oversized heads) and
// native, which is what a proxy wants between itself and an app. It is not a
// documented API, so it is reached in this one place and typed narrowly.

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { HTTPParser } = require('_http_common') as { HTTPParser: HttpParserClass };

export interface HttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or an Error with `code` (HPE_*) and `reason`. */
  execute(data: Buffer): number | ParseError;
  /** Signals EOF: completes a close-delimited body, or errors on a truncated message. */
  finish(): undefined | ParseError;
  close(): void;
  [key: number]: unknown;
}

export interface ParseError extends Error {
  code: string;
  reason: string;
  bytesParsed: number;
}

interface HttpParserClass {
  new (): HttpParser;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kLenientNone: number;
}

export const ParserClass = HTTPParser;
export const RESPONSE = HTTPParser.RESPONSE;
export const kOnMessageBegin = HTTPParser.kOnMessageBegin;
export const kOnHeaders = HTTPParser.kOnHeaders;
export const kOnHeadersComplete = HTTPParser.kOnHeadersComplete;
export const kOnBody = HTTPParser.kOnBody;
export const kOnMessageComplete = HTTPParser.kOnMessageComplete;
export const LENIENT_NONE = HTTPParser.kLenientNone;

/** Return value of the headers-complete callback telling llhttp the message has no body (HEAD). */
export const SKIP_BODY = 1;

// The common upstream response, parsed without llhttp: an HTTP/1.1 head that
// arrives whole in one read, with a Content-Length body (the rest of which
// the caller counts off the following reads; what follows the body in the
// same read is the next pipelined response, or an error the caller sees). Handing such a response
// through Node's parser costs a C++ -> JS call per event, a JS array of
// header strings built in C++, and a fresh Buffer for the body; here it is
// one latin1 decode of the head and a view of the read buffer. Anything
// unusual (1xx, chunked, close-delimited, HTTP/1.0, obs-fold, odd bytes, a
// head split over reads) returns null and goes to llhttp, which then parses
// the same bytes from the start, with all its strictness.

export interface SimpleResponse {
  status: number;
  reason: string;
  /** Names and values alternating, as llhttp gives them (values without surrounding whitespace). */
  headers: string[];
  keepAlive: boolean;
  /** Where the body starts in the buffer. */
  bodyStart: number;
  /** Body length (0 for HEAD, 204 and 304). */
  bodyLength: number;
  /** Body bytes in this read, at most bodyLength (the rest follows in later reads). */
  bodyAvailable: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

// RFC 9110 tchar.
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TOKEN[c] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = 1;
for (let c = 97; c <= 122; c++) TOKEN[c] = 1;

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] === 0) return false;
  }
  return true;
}

/** Field values and reason phrases: HTAB, SP, VCHAR and obs-text; no other control byte. */
function isFieldText(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127) return false;
  }
  return true;
}

function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s.charCodeAt(start) === 32 || s.charCodeAt(start) === 9)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 32 || s.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

function hasCloseToken(value: string): boolean {
  if (value.length === 5) return value.toLowerCase() === 'close';
  for (const token of value.split(',')) if (trimOws(token).toLowerCase() === 'close') return true;
  return false;
}

/**
 * The response starting at buf[start] when its head is simple and complete
 * before `end`; otherwise null (let llhttp parse it). Bytes after its body
 * are not looked at. `headOnly`: the request was HEAD, so no body follows
 * whatever the head says.
 */
export function parseSimpleResponse(buf: Buffer, start: number, end: number, maxHeadBytes: number, headOnly: boolean): SimpleResponse | null {
  const headEnd = buf.indexOf(CRLFCRLF, start);
  if (headEnd === -1 || headEnd + 4 > end || headEnd + 4 - start > maxHeadBytes) return null;
  const head = buf.toString('latin1', start, headEnd);
  // Status line: "HTTP/1.1 200 OK".
  let lineEnd = head.indexOf('\r\n');
  if (lineEnd === -1) lineEnd = head.length;
  if (lineEnd < 12 || !head.startsWith('HTTP/1.1 ') || head.charCodeAt(12) !== 32 && lineEnd !== 12) return null;
  const d0 = head.charCodeAt(9) - 48;
  const d1 = head.charCodeAt(10) - 48;
  const d2 = head.charCodeAt(11) - 48;
  if (d0 < 2 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return null; // 1xx and junk go to llhttp
  const status = d0 * 100 + d1 * 10 + d2;
  const reason = lineEnd > 13 ? head.slice(13, lineEnd) : '';
  if (!isFieldText(reason)) return null;

  const headers: string[] = [];
  let contentLength = -1;
  let keepAlive = true;
  let pos = lineEnd + 2;
  while (pos < head.length) {
    let end = head.indexOf('\r\n', pos);
    if (end === -1) end = head.length;
    const colon = head.indexOf(':', pos);
    if (colon === -1 || colon >= end) return null;
    const name = head.slice(pos, colon);
    if (!isToken(name)) return null; // also refuses obs-fold (a line starting with whitespace)
    const value = trimOws(head.slice(colon + 1, end));
    if (!isFieldText(value)) return null; // bare CR or LF, NUL, other controls
    const lower = name.length === 14 || name.length === 10 || name.length === 17 ? name.toLowerCase() : '';
    if (lower === 'content-length') {
      if (contentLength !== -1 || value.length === 0 || value.length > 15) return null;
      for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i);
        if (c < 48 || c > 57) return null;
      }
      contentLength = Number(value);
    } else if (lower === 'transfer-encoding') {
      return null;
    } else if (lower === 'connection') {
      if (hasCloseToken(value)) keepAlive = false;
    }
    headers.push(name, value);
    pos = end + 2;
  }

  const bodyStart = headEnd + 4;
  let bodyLength: number;
  if (headOnly || status === 204 || status === 304) {
    bodyLength = 0;
  } else {
    if (contentLength === -1) return null; // close-delimited
    bodyLength = contentLength;
  }
  const bodyAvailable = Math.min(bodyLength, end - bodyStart);
  return { status, reason, headers, keepAlive, bodyStart, bodyLength, bodyAvailable };
}

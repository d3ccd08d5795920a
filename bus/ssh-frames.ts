// The bytes of an ssh session as they cross the wire, shared by the DEA, the
// controller and the CLI (control/API.md, "ssh"):
// - output, on NATS (`ssh.<session>.out`) and in the controller's binary
//   WebSocket frames alike: one channel byte (1 stdout, 2 stderr), then data;
// - the client's text frames: {"resize":[cols,rows]} or {"eof":true}
//   (its binary frames are stdin bytes, as they are);
// - the controller's last text frame: {"exit":<code>} (with "error" when the
//   session was ended from outside, e.g. the instance stopped), or
//   {"error":"..."} when there is no exit code (the command could not run).

import { SSH_CHANNEL, SSH_MAX_CHUNK, SSH_MAX_TERMINAL, type SshChannel } from './platform';

/** One output message or frame per SSH_MAX_CHUNK bytes of data. */
export function encodeOutput(channel: SshChannel, data: Uint8Array): Buffer[] {
  const frames: Buffer[] = [];
  for (let start = 0; start < data.length; start += SSH_MAX_CHUNK) {
    const slice = data.subarray(start, Math.min(data.length, start + SSH_MAX_CHUNK));
    const frame = Buffer.allocUnsafe(slice.length + 1);
    frame[0] = channel;
    frame.set(slice, 1);
    frames.push(frame);
  }
  return frames;
}

/** Undefined for an empty frame or an unknown channel. The data is a view of `frame`. */
export function decodeOutput(frame: Uint8Array): { channel: SshChannel; data: Uint8Array } | undefined {
  if (frame.length === 0) return undefined;
  const channel = frame[0];
  if (channel !== SSH_CHANNEL.stdout && channel !== SSH_CHANNEL.stderr) return undefined;
  return { channel, data: frame.subarray(1) };
}

export type ClientText = { resize: [cols: number, rows: number] } | { eof: true };
export type ServerText = { exit: number; error?: string } | { error: string };

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const terminalSide = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= SSH_MAX_TERMINAL;

/** A text frame from the client; an error line (never quoting the input) when it is neither form. */
export function parseClientText(text: string): ClientText | { invalid: string } {
  const value = parseObject(text);
  if (value === undefined) return { invalid: 'a text frame must be a JSON object' };
  if (value.eof === true) return { eof: true };
  const size = value.resize;
  if (Array.isArray(size) && size.length === 2 && terminalSide(size[0]) && terminalSide(size[1])) return { resize: [size[0], size[1]] };
  if (size !== undefined) return { invalid: `resize must be [cols, rows], each 1-${SSH_MAX_TERMINAL}` };
  return { invalid: 'expected {"resize":[cols,rows]} or {"eof":true}' };
}

export function resizeText(cols: number, rows: number): string {
  return JSON.stringify({ resize: [cols, rows] });
}

export const EOF_TEXT = JSON.stringify({ eof: true });

/** The controller's closing text frame; undefined when it is neither form. */
export function parseServerText(text: string): ServerText | undefined {
  const value = parseObject(text);
  if (value === undefined) return undefined;
  if (typeof value.exit === 'number' && Number.isInteger(value.exit) && value.exit >= 0 && value.exit <= 255) {
    return typeof value.error === 'string' ? { exit: value.exit, error: value.error } : { exit: value.exit };
  }
  if (typeof value.error === 'string') return { error: value.error };
  return undefined;
}

export function exitText(code: number, error?: string): string {
  return JSON.stringify(error === undefined ? { exit: code } : { exit: code, error });
}

export function errorText(message: string): string {
  return JSON.stringify({ error: message });
}

// Times as the CLI shows them.

/** Seconds of uptime as Cloud Foundry's vmc showed them: "0d:1h:2m:3s". */
export function formatUptime(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-';
  let rest = Math.floor(seconds);
  const days = Math.floor(rest / 86400);
  rest %= 86400;
  const hours = Math.floor(rest / 3600);
  rest %= 3600;
  const minutes = Math.floor(rest / 60);
  return `${days}d:${hours}h:${minutes}m:${rest % 60}s`;
}

/** Epoch seconds as local "YYYY-MM-DD HH:MM:SS". */
export function formatTimestamp(epochSeconds: number): string {
  if (!Number.isFinite(epochSeconds) || epochSeconds <= 0) return '-';
  const d = new Date(epochSeconds * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** How long ago, coarsely: "12s ago", "5m ago", "3h ago", "2d ago". */
export function formatAgo(epochSeconds: number, nowMs: number = Date.now()): string {
  if (!Number.isFinite(epochSeconds) || epochSeconds <= 0) return '-';
  const seconds = Math.max(0, Math.floor(nowMs / 1000 - epochSeconds));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

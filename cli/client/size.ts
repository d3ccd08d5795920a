// Memory sizes as users write them in manifests and flags: Cloud Foundry's
// units M, MB, G and GB in any case ("256M", "256mb", "1G", "1.5G"), and a
// bare number as megabytes (design.md's `--memory MB`).

import { AppBounds } from '../../bus/platform';

const UNIT_MB: Record<string, number> = { '': 1, M: 1, MB: 1, G: 1024, GB: 1024 };

/**
 * Megabytes within what the API takes for one instance; throws an Error
 * that starts with "memory" and says what is accepted, in the units the
 * user writes (not the API's megabytes).
 */
export function parseMemoryMb(input: string | number): number {
  const text = String(input).trim();
  const match = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text);
  const factor = match ? UNIT_MB[match[2]!.toUpperCase()] : undefined;
  if (!match || factor === undefined) throw new Error(`memory must be a size like 256M or 1G (units M, MB, G, GB; no unit: MB), got ${JSON.stringify(text)}`);
  const mb = Number(match[1]) * factor;
  if (!Number.isInteger(mb)) throw new Error(`memory must be a whole number of megabytes, got ${JSON.stringify(text)}`);
  if (mb < AppBounds.minMemoryMb || mb > AppBounds.maxMemoryMb) {
    throw new Error(`memory must be from ${formatMemoryMb(AppBounds.minMemoryMb)} to ${formatMemoryMb(AppBounds.maxMemoryMb)}, got ${JSON.stringify(text)}`);
  }
  return mb;
}

/** Bytes for people: "512B", "1.5K", "40.0M", "1.2G" (binary units, as ls -h). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '-';
  const units = ['B', 'K', 'M', 'G', 'T'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value}B` : `${value.toFixed(1)}${units[unit]}`;
}

/** Megabytes as a quota: "256M", "1G", "1.5G". */
export function formatMemoryMb(mb: number): string {
  if (mb >= 1024 && mb % 512 === 0) return `${mb / 1024}G`;
  return `${mb}M`;
}

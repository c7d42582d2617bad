/**
 * Structured logs (pino). Log state changes, never per packet (CONVENTIONS.md §10).
 * Level from SHOAL_LOG_LEVEL (default 'info'; tests default to 'silent').
 */
import { pino, destination, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, options: { level?: string; destination?: number } = {}): Logger {
  const level = options.level ?? process.env['SHOAL_LOG_LEVEL'] ?? (process.env['VITEST'] ? 'silent' : 'info');
  return pino({ name, level }, destination(options.destination ?? 2));
}

/** A logger that drops everything: the default for components built without one. */
export const silentLogger: Logger = pino({ level: 'silent' });

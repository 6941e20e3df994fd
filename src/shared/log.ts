import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The process logger: structured, one event per line. Scopes (`ads`, `config`, …) are child loggers, so a line says
 * where it came from; config lines carry kind/namespace/name and xDS lines the proxy id.
 */
export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino({ level: options.level ?? 'info', base: undefined }, options.destination ?? process.stderr);
}

/** A logger that drops everything, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });

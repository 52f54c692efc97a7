/**
 * The logging surface components accept: the four levels of a pino logger, structured fields
 * first, message second. Any pino `Logger` satisfies it, so the worker passes its own logger and
 * tests pass `silentLog` or a recorder — no component depends on pino itself.
 */
export interface Log {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

const ignore = (): void => undefined;

export const silentLog: Log = { debug: ignore, info: ignore, warn: ignore, error: ignore };

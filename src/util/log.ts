/**
 * How vtep logs: one event per line, each with a stable `event` name, a sentence for people
 * (`msg`) and fields with stable names, at a level. The modules get this function; only the
 * composition root knows it is pino (JSON lines, or readable text on a terminal).
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export type Log = (
  level: Level,
  event: string,
  msg: string,
  fields?: Record<string, unknown>,
) => void;

export const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

/** The forms of a log line (util/logger.ts writes them; here so the CLI can list them cheaply). */
export type LogFormat = 'auto' | 'text' | 'json' | 'journal';
export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'text', 'json', 'journal'];

/** Logs nothing (tests, and callers that did not ask for logs). */
export const silent: Log = () => {};

import { fstatSync, writeSync } from 'node:fs';
import { pino } from 'pino';
import type { Level, Log, LogFormat } from './log.js';

const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
/** syslog(3) priorities: LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR. */
const PRIORITY: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };

export interface LoggerOptions {
  level: Level;
  format: LogFormat;
  /** Where lines go (default: fd 2). */
  fd?: number;
  env?: NodeJS.ProcessEnv;
  isTTY?: boolean;
}

/** The form `auto` stands for on this stderr. */
export function resolveFormat(o: LoggerOptions): Exclude<LogFormat, 'auto'> {
  if (o.format !== 'auto') return o.format;
  const fd = o.fd ?? 2;
  if (journalStream(fd, (o.env ?? process.env).JOURNAL_STREAM)) return 'journal';
  return (o.isTTY ?? process.stderr.isTTY) ? 'text' : 'json';
}

/** Whether `fd` is the stream systemd's JOURNAL_STREAM (`DEVICE:INODE`) names. */
export function journalStream(fd: number, value: string | undefined): boolean {
  const m = /^(\d+):(\d+)$/.exec(value ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]) && st.ino === BigInt(m[2]);
  } catch {
    return false;
  }
}

/**
 * The service's logger, one event per line on stderr, written synchronously (the last lines
 * before an exit are not lost), in one of three forms:
 * - `json`: pino's line (level, time, event, msg and the event's fields), for log shippers;
 * - `text`: `HH:MM:SS.mmm LEVEL msg [event k=v …]`, for a terminal;
 * - `journal`: `<PRIORITY>msg [event k=v …]`: journald reads the syslog priority prefix of each
 *   stream line (SyslogLevelPrefix=, on by default), so `journalctl -u vtep -p warning` works.
 * `auto` picks journal when stderr is the stream systemd connected (JOURNAL_STREAM names its
 * device and inode), text on a terminal, json otherwise.
 */
export function makeLogger(o: LoggerOptions): Log {
  const fd = o.fd ?? 2;
  const format = resolveFormat(o);
  if (format === 'json') {
    const logger = pino(
      {
        level: o.level,
        base: undefined,
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      pino.destination({ fd, sync: true }),
    );
    return (lvl, event, msg, fields) => logger[lvl]({ event, ...fields }, msg);
  }
  const least = RANK[o.level];
  return (lvl, event, msg, fields) => {
    if (RANK[lvl] < least) return;
    const tail = `[${[event, ...Object.entries(fields ?? {}).map(pair)].join(' ')}]`;
    const line =
      format === 'journal'
        ? `<${PRIORITY[lvl]}>${oneLine(msg)} ${tail}\n`
        : `${clockTime()} ${lvl.toUpperCase().padEnd(5)} ${oneLine(msg)} ${tail}\n`;
    try {
      writeSync(fd, line);
    } catch {
      // stderr gone (EPIPE): nothing left to tell
    }
  };
}

/** `key=value`, the value as JSON unless it is a plain word. */
function pair([k, v]: [string, unknown]): string {
  const s = typeof v === 'string' && /^[\w.:/@%+-]+$/.test(v) ? v : JSON.stringify(v);
  return `${k}=${s}`;
}

/** A message with a newline would be two journal entries: never. */
const oneLine = (s: string) => s.replace(/\r?\n/g, ' ');

function clockTime(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/**
 * RFC 7047 §4: OVSDB sends JSON-RPC messages as JSON texts one after another on the stream,
 * with no delimiter. This splits a stream into those texts by tracking nesting and strings, so a
 * message split across reads, or several in one read, each come out once, whole.
 *
 * The server is not trusted: a text may be at most `maxBytes` long and nest at most `maxDepth`
 * levels (OVSDB's own messages nest about ten), checked as the bytes arrive, before anything is
 * parsed. Everything downstream (JSON.parse, JSON.stringify, String()) then works on values of
 * bounded depth, where the engines' recursion cannot overflow the stack. Each chunk is scanned
 * once, where it arrived, and a text's pieces are joined only when it is complete.
 */
export class JsonSplitter {
  /** Pieces of the unfinished text, and their length. */
  private parts: string[] = [];
  private length = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(
    readonly maxBytes = 16 << 20,
    readonly maxDepth = 128,
  ) {}

  /** Feed a chunk; returns the complete JSON texts it finished (unparsed). Throws on garbage. */
  push(chunk: string): string[] {
    const out: string[] = [];
    // Where the text being scanned starts in `chunk` (0 when it began in an earlier one).
    let start = this.parts.length > 0 ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (start < 0) {
        if (c === SPACE || c === LF || c === CR || c === TAB) continue;
        if (c !== OPEN_BRACE && c !== OPEN_BRACKET)
          throw new Error(
            `not a JSON object or array at ${JSON.stringify(chunk.slice(i, i + 20))}`,
          );
        start = i;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) this.inString = false;
        continue;
      }
      if (c === QUOTE) this.inString = true;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (++this.depth > this.maxDepth)
          throw new Error(`a message nested deeper than ${this.maxDepth} levels`);
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        if (--this.depth === 0) {
          const piece = chunk.slice(start, i + 1);
          this.check(this.length + piece.length);
          out.push(this.parts.length ? this.parts.join('') + piece : piece);
          this.parts = [];
          this.length = 0;
          start = -1;
        }
      }
    }
    if (start >= 0) {
      const piece = start === 0 ? chunk : chunk.slice(start);
      this.check(this.length + piece.length);
      this.parts.push(piece);
      this.length += piece.length;
    }
    return out;
  }

  private check(length: number): void {
    if (length > this.maxBytes) throw new Error(`a message longer than ${this.maxBytes} bytes`);
  }
}

const SPACE = 0x20;
const LF = 0x0a;
const CR = 0x0d;
const TAB = 0x09;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * RFC 7047 §4: OVSDB sends JSON-RPC messages as JSON texts one after another on the stream,
 * with no delimiter. This splits a stream into those texts by tracking nesting and strings, so a
 * message split across reads, or several in one read, each come out once, whole.
 */
export class JsonSplitter {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Where the text being scanned starts in `buf`, and how far it was scanned. */
  private start = -1;
  private scanned = 0;

  constructor(private readonly maxBytes = 16 << 20) {}

  /** Feed a chunk; returns the complete JSON texts it finished (unparsed). Throws on garbage. */
  push(chunk: string): string[] {
    this.buf += chunk;
    const out: string[] = [];
    for (let i = this.scanned; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (this.start < 0) {
        if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
        if (c !== '{' && c !== '[')
          throw new Error(
            `not a JSON object or array at ${JSON.stringify(this.buf.slice(i, i + 20))}`,
          );
        this.start = i;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') this.depth++;
      else if (c === '}' || c === ']') {
        this.depth--;
        if (this.depth === 0) {
          out.push(this.buf.slice(this.start, i + 1));
          this.start = -1;
        }
      }
    }
    // Keep only the unfinished text.
    const keep = this.start < 0 ? this.buf.length : this.start;
    this.buf = this.buf.slice(keep);
    this.scanned = this.buf.length;
    if (this.start >= 0) this.start = 0;
    if (this.buf.length > this.maxBytes)
      throw new Error(`a message longer than ${this.maxBytes} bytes`);
    return out;
  }
}

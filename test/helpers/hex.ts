/** Hex helpers for golden-byte tests. Whitespace in the input is ignored. */
export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

/** A buffer of `length` bytes pre-filled with 0xa5, so bytes an emitter forgot to write show. */
export function poisoned(length: number): Buffer {
  return Buffer.alloc(length, 0xa5);
}

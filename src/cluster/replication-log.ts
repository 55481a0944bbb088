/**
 * The sender's retransmission log (replication.ts): the last ENTRIES frames this node sent, in
 * sequence order, each kept as the exact bytes that went on the wire so that a resume re-sends
 * them without re-encoding. One log serves every peer (all peers receive the same batches); each
 * peer's stream only remembers how far it was sent and acknowledged.
 *
 * Bounded by entry count and by age (trim()); what falls out can only be replaced by a full
 * resync. A plain array with a moving head, compacted now and then, makes append/trim O(1)
 * amortised and get(seq) O(1) (sequence numbers are contiguous).
 */

export interface LoggedBatch {
  readonly seq: number;
  readonly count: number;
  /** Entries in this batch and all earlier ones since the process started. */
  readonly cum: number;
  readonly frame: Buffer;
  /** performance.now() when the batch was made. */
  readonly at: number;
}

export class ReplicationLog {
  #batches: LoggedBatch[] = [];
  #head = 0;
  #nextSeq = 1;
  #cum = 0;

  /** The sequence number the next batch will get. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** The last sequence number issued (0 before the first batch). */
  get lastSeq(): number {
    return this.#nextSeq - 1;
  }

  /** The oldest sequence still held; nextSeq when the log is empty. */
  get firstSeq(): number {
    return this.#head < this.#batches.length ? this.#batches[this.#head].seq : this.#nextSeq;
  }

  /** Entries held. */
  get entries(): number {
    if (this.#head >= this.#batches.length) return 0;
    const first = this.#batches[this.#head];
    return this.#cum - (first.cum - first.count);
  }

  get batches(): number {
    return this.#batches.length - this.#head;
  }

  get bytes(): number {
    let n = 0;
    for (let i = this.#head; i < this.#batches.length; i++) n += this.#batches[i].frame.length;
    return n;
  }

  append(count: number, frame: Buffer, at: number): LoggedBatch {
    this.#cum += count;
    const b: LoggedBatch = { seq: this.#nextSeq++, count, cum: this.#cum, frame, at };
    this.#batches.push(b);
    return b;
  }

  get(seq: number): LoggedBatch | undefined {
    const i = this.#head + (seq - this.firstSeq);
    return i >= this.#head && i < this.#batches.length ? this.#batches[i] : undefined;
  }

  /** The oldest held batch after `seq` (for lag: the oldest one not acknowledged). */
  oldestAfter(seq: number): LoggedBatch | undefined {
    if (seq >= this.lastSeq) return undefined;
    return this.get(Math.max(seq + 1, this.firstSeq));
  }

  /** Entries held in batches after `seq` (a lower bound when `seq` fell out of the log). */
  entriesAfter(seq: number): number {
    if (seq >= this.lastSeq || this.#head >= this.#batches.length) return 0;
    const b = this.get(seq);
    if (b !== undefined) return this.#cum - b.cum;
    return this.entries;
  }

  /** Drop the oldest batches while more than maxEntries are held or they are older than maxAgeMs. */
  trim(maxEntries: number, maxAgeMs: number, now: number): void {
    while (this.#head < this.#batches.length) {
      const first = this.#batches[this.#head];
      if (this.entries <= maxEntries && now - first.at <= maxAgeMs) break;
      this.#batches[this.#head++] = undefined as unknown as LoggedBatch; // release the frame
    }
    if (this.#head > 1024 && this.#head * 2 > this.#batches.length) {
      this.#batches = this.#batches.slice(this.#head);
      this.#head = 0;
    }
  }
}

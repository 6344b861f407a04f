import { formatProgress } from "./format.ts";

/** Payloads at least this large get a progress line (when stderr is a terminal). */
export const PROGRESS_MIN_BYTES = 64 * 2 ** 20;

/**
 * A single self-overwriting progress line on a terminal, redrawn at most every `intervalMs`
 * so a fast copy is not slowed down by the terminal.
 */
export class ProgressBar {
  private readonly started: number;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private width = 0;

  constructor(
    private readonly out: { write(s: string): unknown },
    private readonly label: string,
    private readonly total: number,
    private readonly now: () => number = () => performance.now(),
    private readonly intervalMs = 100,
  ) {
    this.started = now();
  }

  update(done: number): void {
    const t = this.now();
    if (done < this.total && t - this.lastDraw < this.intervalMs) return;
    this.lastDraw = t;
    this.draw(done, t);
  }

  /** Draws the final state and ends the line. */
  finish(done: number): void {
    this.draw(done, this.now());
    this.out.write("\n");
  }

  private draw(done: number, t: number): void {
    const text = `${this.label} ${formatProgress(done, this.total, t - this.started)}`;
    this.out.write(`\r${text.padEnd(this.width)}`);
    this.width = text.length;
  }
}

/** The bar when one is wanted (big payload, terminal, human output), else undefined. */
export function progressFor(
  out: { write(s: string): unknown },
  isTTY: boolean,
  json: boolean,
  label: string,
  total: number,
): ProgressBar | undefined {
  return isTTY && !json && total >= PROGRESS_MIN_BYTES ? new ProgressBar(out, label, total) : undefined;
}

/** The logging surface the API core needs; pino on Node, console in Workers. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** A JSON-lines logger on console, for runtimes without pino (Workers) and for tests. */
export function consoleLogger(level: "debug" | "info" | "warn" | "error" | "silent" = "info"): Logger {
  const order = ["debug", "info", "warn", "error", "silent"];
  const at = order.indexOf(level);
  const emit = (lvl: string, obj: object, msg?: string) => {
    if (order.indexOf(lvl) < at) return;
    const o = obj as { err?: unknown };
    const err = o.err instanceof Error ? { message: o.err.message, stack: o.err.stack } : o.err;
    console.log(
      JSON.stringify({ level: lvl, time: new Date().toISOString(), msg, ...obj, ...(err ? { err } : {}) }),
    );
  };
  return {
    debug: (o, m) => emit("debug", o, m),
    info: (o, m) => emit("info", o, m),
    warn: (o, m) => emit("warn", o, m),
    error: (o, m) => emit("error", o, m),
  };
}

#!/usr/bin/env node
// Entry point of the `payloadctl` command. The project runs TypeScript directly (tsx loader);
// see docs/adr/0001-typescript-without-a-build-step.md.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/main.ts");

// The first Ctrl-C cancels the running call and lets put/get clean up (delete the half-written
// payload, release the lease, remove the partial file); a second one exits at once.
const interrupt = new AbortController();
process.on("SIGINT", () => {
  if (interrupt.signal.aborted) process.exit(130);
  interrupt.abort();
});

process.exitCode = await main(process.argv.slice(2), process.env, {
  stdout: process.stdout,
  stderr: process.stderr,
  stdoutIsTTY: process.stdout.isTTY === true,
  stderrIsTTY: process.stderr.isTTY === true,
  signal: interrupt.signal,
});

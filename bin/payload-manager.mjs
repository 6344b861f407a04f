#!/usr/bin/env node
// Entry point of the `payload-manager` command. The project runs TypeScript directly (tsx loader);
// see docs/adr/0001-typescript-without-a-build-step.md.
import { register } from "tsx/esm/api";

register();
const { main } = await import("./launcher.ts");
process.exitCode = await main(process.argv.slice(2), process.env);

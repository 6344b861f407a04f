export * from "./fakes.ts";
export * from "./memory-catalog.ts";

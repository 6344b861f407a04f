export { type AppDeps, createApp } from "./app.ts";
export { API_ENV, type ApiConfig, ApiConfigSchema, ConfigError, loadConfig } from "./config.ts";
export { consoleLogger, type Logger } from "./logger.ts";
export { type ApiHandle, startApi } from "./main.ts";
export { type Metrics, noopMetrics } from "./metrics.ts";

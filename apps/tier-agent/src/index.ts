export {
  AGENT_ENV,
  type AgentConfig,
  AgentConfigError,
  AgentConfigSchema,
  loadAgentConfig,
} from "./config.ts";
export { type AgentHandle, startAgent } from "./main.ts";

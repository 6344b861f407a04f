// PM_AGENT_TOKEN is one secret read by three roles and sent as `authorization: Bearer <token>`.
// Each role takes the same value, and each refuses at start-up one that cannot be sent in a
// header (a secret file's trailing newline, a space) instead of failing every call to an agent.

import { loadConfig } from "@pm/api";
import { ConfigError } from "@pm/config";
import { loadAgentConfig } from "@pm/tier-agent";
import { loadWorkerConfig } from "@pm/worker";
import { describe, expect, it } from "vitest";

const roles = {
  api: (env: Record<string, string>) => loadConfig(undefined, env).auth.agentToken,
  worker: (env: Record<string, string>) => loadWorkerConfig(undefined, env).agentToken,
  agent: (env: Record<string, string>) => loadAgentConfig(undefined, env).controlPlaneToken,
};

describe("PM_AGENT_TOKEN", () => {
  it("is the same token for the API, the worker and the agent, and empty when unset", () => {
    for (const load of Object.values(roles)) {
      expect(load({ PM_AGENT_TOKEN: "tok-3f9a_Z~!" })).toBe("tok-3f9a_Z~!");
      expect(load({})).toBe("");
    }
  });

  it("is refused by every role when it cannot travel in a header, naming the setting", () => {
    for (const [role, load] of Object.entries(roles)) {
      for (const bad of ["tok-3f9a\n", "two words", "tab\there", "non-ascii-é"]) {
        let thrown: unknown;
        try {
          load({ PM_AGENT_TOKEN: bad });
        } catch (e) {
          thrown = e;
        }
        expect(thrown, `${role} took ${JSON.stringify(bad)}`).toBeInstanceOf(ConfigError);
        expect((thrown as ConfigError).message).toMatch(/(agentToken|controlPlaneToken).*visible ASCII/s);
      }
    }
  });
});

import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createNodePayloadClient } from "./index.ts";

// Port 1 on loopback refuses connections: the call fails in the transport, after the client
// chose its agent. A wrong agent for the scheme would fail before connecting, with another error.
describe("createNodePayloadClient", () => {
  for (const scheme of ["http", "https"]) {
    it(`reaches ${scheme}: URLs through a matching keep-alive agent`, async () => {
      const client = createNodePayloadClient({ baseUrl: `${scheme}://127.0.0.1:1` });
      const err = await client.admin.stats({}).catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      expect((err as ConnectError).message).not.toMatch(/Protocol .* not supported/);
    });
  }
});

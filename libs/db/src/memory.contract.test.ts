import { MemoryCatalog } from "@pm/domain/testing";
import { catalogContract } from "./testing/catalog.contract.ts";

// The reference adapter: the contract's expectations are checked against it first.
catalogContract("memory", async () => ({ catalog: new MemoryCatalog(), cleanup: async () => {} }));

export { type CatalogFixture, catalogContract } from "./catalog.contract.ts";

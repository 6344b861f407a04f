import type { LeaseId } from "../model/ids.ts";
import type { Lease } from "../model/lease.ts";
import type {
  Catalog,
  CatalogTx,
  LeaseGrantRequest,
  LeaseGrantResult,
  LeaseReleaseResult,
} from "./catalog.ts";

/**
 * `Catalog.grantLease` on the row-at-a-time CatalogTx: what adapters without a set-based form
 * (memory, SQLite) run inside one transaction, and the reference the contract suite holds the
 * set-based forms to.
 */
export async function grantLeaseInTx(tx: CatalogTx, req: LeaseGrantRequest): Promise<LeaseGrantResult> {
  const p = await tx.lockPayload(req.payloadId);
  if (!p || p.namespace !== req.namespace) return { payload: undefined, lease: undefined };
  if (!req.states.includes(p.state) || !req.tiers.includes(p.placement.tier)) {
    return { payload: p, lease: undefined };
  }
  const lease: Lease = {
    id: req.leaseId,
    payloadId: p.id,
    namespace: p.namespace,
    version: p.version,
    createdAt: req.now,
    expiresAt: req.expiresAt,
    revoked: false,
  };
  await tx.insertLease(lease);
  if (p.lastAccessAt > req.touchIfAccessedAtOrBefore) return { payload: p, lease };
  const touched = { ...p, lastAccessAt: req.now };
  await tx.updatePayload(touched);
  return { payload: touched, lease };
}

/** `Catalog.releaseLease` on the row-at-a-time CatalogTx (see `grantLeaseInTx`). */
export async function releaseLeaseInTx(
  tx: CatalogTx,
  leaseId: LeaseId,
  namespace: string,
): Promise<LeaseReleaseResult | undefined> {
  const lease = await tx.getLease(leaseId);
  if (!lease || lease.namespace !== namespace) return undefined;
  await tx.deleteLease(leaseId);
  const p = await tx.getPayload(lease.payloadId);
  return { payloadId: lease.payloadId, payloadState: p?.state };
}

/**
 * A catalog whose only way in is `transaction` (memory, SQLite: one writer, no round trips to
 * save): autocommit and the lease steps run as transactions over the row-at-a-time forms above.
 */
export abstract class TransactionOnlyCatalog implements Catalog {
  abstract transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T>;
  abstract ping(): Promise<void>;
  abstract close(): Promise<void>;

  autocommit<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T> {
    return this.transaction(fn);
  }

  grantLease(req: LeaseGrantRequest): Promise<LeaseGrantResult> {
    return this.transaction((tx) => grantLeaseInTx(tx, req));
  }

  releaseLease(leaseId: LeaseId, namespace: string): Promise<LeaseReleaseResult | undefined> {
    return this.transaction((tx) => releaseLeaseInTx(tx, leaseId, namespace));
  }
}

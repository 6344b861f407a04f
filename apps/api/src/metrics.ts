/**
 * The metrics the API core records. Node backs it with prom-client (`node/prom-metrics.ts`);
 * Workers use `noopMetrics`. Later features add their own series through the same interface.
 */
export interface Metrics {
  observeRequest(
    labels: { service: string; method: string; code: string; transport: string },
    seconds: number,
  ): void;
  /** Prometheus text exposition. */
  render(): Promise<{ contentType: string; body: string }>;
}

export const noopMetrics: Metrics = {
  observeRequest: () => undefined,
  render: async () => ({ contentType: "text/plain; version=0.0.4", body: "" }),
};

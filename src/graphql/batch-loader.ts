/**
 * DataLoader with recon's conventions: batches capped at MAX_BATCH_SIZE keys, each batch's size observed in
 * `recon_dataloader_batch_size{loader}`, and results returned in key order from a Map the batch function fills
 * (keys with no rows get the batch function's default, so "no rows" never becomes an error).
 */
import DataLoader from "dataloader";
import type { Metrics } from "../observability/metrics.js";

export const MAX_BATCH_SIZE = 500;

export type LoaderMetrics = Pick<Metrics, "dataloaderBatchSize">;

export function batchLoader<V>(
  name: string,
  metrics: LoaderMetrics,
  load: (keys: readonly string[]) => Promise<Map<string, V>>,
  missing: () => V,
): DataLoader<string, V> {
  return new DataLoader<string, V>(
    async (keys) => {
      metrics.dataloaderBatchSize.observe({ loader: name }, keys.length);
      const found = await load(keys);
      return keys.map((key) => (found.has(key) ? found.get(key)! : missing()));
    },
    { maxBatchSize: MAX_BATCH_SIZE },
  );
}

/** Groups rows into a Map of arrays by `keyOf`, with an empty array for every key asked. */
export function groupBy<T>(keys: readonly string[], rows: T[], keyOf: (row: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>(keys.map((key) => [key, []]));
  for (const row of rows) groups.get(keyOf(row))?.push(row);
  return groups;
}

/** Indexes rows by `id`. */
export function byId<T extends { id: string }>(rows: T[]): Map<string, T> {
  return new Map(rows.map((row) => [row.id, row]));
}

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../src/observability/metrics.js";

describe("docs/grafana/recon-dashboard.json", () => {
  it("queries only metrics that recon exports", async () => {
    const dashboard = JSON.parse(readFileSync(new URL("../../docs/grafana/recon-dashboard.json", import.meta.url), "utf8")) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const exported = new Set((await createMetrics().registry.getMetricsAsJSON()).map((metric) => metric.name));
    // Metric names: identifiers with an underscore, once label matchers, `by (...)` lists and functions are out.
    const used = dashboard.panels.flatMap((panel) =>
      panel.targets.flatMap((target) => {
        const bare = target.expr.replace(/\{[^}]*\}/g, "").replace(/\bby \([^)]*\)/g, "");
        return [...bare.matchAll(/\b([a-z][a-z0-9_]*_[a-z0-9_]*)\b(?!\s*\()/g)].map((m) => m[1]);
      }),
    );
    const names = used.map((name) => name.replace(/_(bucket|count|sum)$/, ""));
    expect(names.length).toBeGreaterThan(15);
    expect(names.filter((name) => !exported.has(name))).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import type { ReconciliationJob } from "../../src/graphql/models.js";
import type { JobSummary } from "../../src/modules/jobs/job-results.js";
import { combinedAutoMatchRate, combineOutcomes, ruleHits } from "../../src/modules/stats/project-stats.js";

function job(summary: Partial<JobSummary>): ReconciliationJob {
  return { summary } as unknown as ReconciliationJob;
}

const first = job({
  leftRecords: 10,
  rightRecords: 10,
  outcomes: [
    { outcome: "MATCHED", groups: 8, leftRecords: 8, rightRecords: 8, amounts: [{ currency: "EUR", left: "100.1000", right: "100.1000" }, { currency: "USD", left: "0.0001", right: "0.0001" }] },
    { outcome: "AMOUNT_MISMATCH", groups: 1, leftRecords: 1, rightRecords: 1, amounts: [{ currency: "EUR", left: "-5.5000", right: "-5.4900" }] },
    { outcome: "UNMATCHED_LEFT", groups: 1, leftRecords: 1, rightRecords: 0, amounts: [{ currency: "EUR", left: "7.0000", right: "0.0000" }] },
    { outcome: "UNMATCHED_RIGHT", groups: 1, leftRecords: 0, rightRecords: 1, amounts: [{ currency: "EUR", left: "0.0000", right: "3.2500" }] },
  ],
  passes: [{ pass: 1, name: "exact", groups: 8 }],
});
const second = job({
  leftRecords: 5,
  rightRecords: 5,
  outcomes: [
    { outcome: "MATCHED", groups: 2, leftRecords: 2, rightRecords: 2, amounts: [{ currency: "EUR", left: "0.9000", right: "0.9000" }] },
    { outcome: "SUGGESTED", groups: 3, leftRecords: 3, rightRecords: 3, amounts: [{ currency: "GBP", left: "1.0000", right: "1.0000" }] },
  ],
  passes: [{ pass: 1, name: "exact", groups: 2 }, { pass: 2, name: "fuzzy", groups: 3 }],
});

describe("project statistics from job summaries", () => {
  it("adds amounts exactly, per outcome and currency, never across currencies", () => {
    const matched = combineOutcomes([first, second]).find((total) => total.outcome === "MATCHED")!;
    expect(matched).toMatchObject({ groups: 10, leftRecords: 10, rightRecords: 10 });
    expect(matched.amounts).toEqual([
      { currency: "EUR", left: "101.0000", right: "101.0000" },
      { currency: "USD", left: "0.0001", right: "0.0001" },
    ]);
    const mismatch = combineOutcomes([first, second]).find((total) => total.outcome === "AMOUNT_MISMATCH")!;
    expect(mismatch.amounts).toEqual([{ currency: "EUR", left: "-5.5000", right: "-5.4900" }]);
  });

  it("computes the auto-match rate over all records of the jobs (null without jobs)", () => {
    expect(combinedAutoMatchRate([first, second])).toBe(Number((20 / 30).toFixed(6)));
    expect(combinedAutoMatchRate([])).toBeNull();
    expect(combinedAutoMatchRate([job({})])).toBe(0);
  });

  it("sums rule hits by pass name, most first", () => {
    expect(ruleHits([first, second])).toEqual([
      { rule: "exact", groups: 10 },
      { rule: "fuzzy", groups: 3 },
    ]);
  });
});

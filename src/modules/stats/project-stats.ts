/**
 * A project's reconciliation statistics from the summaries of its latest completed job per pair of data sources
 * (stats-repository.ts reads them): pure functions, no database. Amounts are added as scaled integers, never as
 * floats, and only within one currency.
 */
import type { ReconciliationJob } from "../../graphql/models.js";
import type { JobSummary } from "../jobs/job-results.js";
import { EXCEPTION_OUTCOMES } from "./stats-repository.js";

type OutcomeTotal = JobSummary["outcomes"][number];

const SCALE = 4;

/** "-12.5" → -125000n (scaled by 10^4; amounts are numeric(20, 4)). */
function scaled(text: string): bigint {
  const negative = text.startsWith("-");
  const [whole = "0", fraction = ""] = (negative ? text.slice(1) : text).split(".");
  const value = BigInt(whole || "0") * 10n ** BigInt(SCALE) + BigInt((fraction + "0".repeat(SCALE)).slice(0, SCALE) || "0");
  return negative ? -value : value;
}

/** -125000n → "-12.5000". */
function decimal(value: bigint): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(SCALE + 1, "0");
  return `${negative ? "-" : ""}${digits.slice(0, -SCALE)}.${digits.slice(-SCALE)}`;
}

/** The stored summary of a completed job (empty figures for a job from before summaries were kept). */
export function summaryOf(job: ReconciliationJob): JobSummary {
  const summary = (job.summary ?? {}) as Partial<JobSummary>;
  return {
    leftRecords: summary.leftRecords ?? 0,
    rightRecords: summary.rightRecords ?? 0,
    autoMatchRate: summary.autoMatchRate ?? 0,
    outcomes: summary.outcomes ?? [],
    passes: summary.passes ?? [],
    phaseMillis: summary.phaseMillis ?? {},
  };
}

/** Outcome totals of several jobs added up: groups and records per outcome, amounts per outcome and currency. */
export function combineOutcomes(jobs: readonly ReconciliationJob[]): OutcomeTotal[] {
  const byOutcome = new Map<string, { total: OutcomeTotal; amounts: Map<string, { left: bigint; right: bigint }> }>();
  for (const job of jobs) {
    for (const total of summaryOf(job).outcomes) {
      let entry = byOutcome.get(total.outcome);
      if (!entry) byOutcome.set(total.outcome, (entry = { total: { ...total, groups: 0, leftRecords: 0, rightRecords: 0, amounts: [] }, amounts: new Map() }));
      entry.total.groups += total.groups;
      entry.total.leftRecords += total.leftRecords;
      entry.total.rightRecords += total.rightRecords;
      for (const amount of total.amounts) {
        const sums = entry.amounts.get(amount.currency) ?? { left: 0n, right: 0n };
        sums.left += scaled(amount.left);
        sums.right += scaled(amount.right);
        entry.amounts.set(amount.currency, sums);
      }
    }
  }
  return [...byOutcome.values()].map(({ total, amounts }) => ({
    ...total,
    amounts: [...amounts]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([currency, sums]) => ({ currency, left: decimal(sums.left), right: decimal(sums.right) })),
  }));
}

/** Records of both sides in MATCHED groups / all records of both sides, over several jobs; null without jobs. */
export function combinedAutoMatchRate(jobs: readonly ReconciliationJob[]): number | null {
  if (jobs.length === 0) return null;
  let matched = 0;
  let all = 0;
  for (const job of jobs) {
    const summary = summaryOf(job);
    all += summary.leftRecords + summary.rightRecords;
    const total = summary.outcomes.find((outcome) => outcome.outcome === "MATCHED");
    matched += (total?.leftRecords ?? 0) + (total?.rightRecords ?? 0);
  }
  return all === 0 ? 0 : Number((matched / all).toFixed(6));
}

/** Groups per rule (pass name) over several jobs, most hits first. */
export function ruleHits(jobs: readonly ReconciliationJob[]): { rule: string; groups: number }[] {
  const hits = new Map<string, number>();
  for (const job of jobs) for (const pass of summaryOf(job).passes) hits.set(pass.name, (hits.get(pass.name) ?? 0) + pass.groups);
  return [...hits].map(([rule, groups]) => ({ rule, groups })).sort((a, b) => b.groups - a.groups || a.rule.localeCompare(b.rule));
}

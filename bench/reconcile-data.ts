/**
 * Generates a ledger (left) and a bank statement (right) with known ground truth, for bench:reconcile and the
 * reconciliation integration tests. Deterministic for a seed. Each ledger transaction falls in one category:
 *
 * - exact    the bank line has the same reference, amount and currency, booked 0–2 days later
 * - drift    the bank amount is off by one cent (0.01)
 * - typo     the bank reference has two adjacent characters swapped
 * - lag      the bank line is booked 5–9 days later
 * - split    the bank shows 2–3 lines with the same reference whose amounts add up to the ledger's (1:N)
 * - mismatch same reference, the bank amount is off by 5.00 or more (an AMOUNT_MISMATCH discrepancy)
 * - onlyLeft the ledger line has no bank line
 * and some bank lines have no ledger line (onlyRight). Amounts are exact: integers of cents throughout.
 */

export type Category = "exact" | "drift" | "typo" | "lag" | "split" | "mismatch" | "onlyLeft" | "onlyRight";

/** Share of each category among ledger lines (onlyRight: extra bank lines, relative to the ledger's count). */
export const DEFAULT_MIX: Record<Category, number> = {
  exact: 0.86,
  drift: 0.03,
  typo: 0.03,
  lag: 0.02,
  split: 0.02,
  mismatch: 0.01,
  onlyLeft: 0.03,
  onlyRight: 0.03,
};

export const CSV_HEADER = "txn_id,account,amount,currency,booked_at,reference";

/** The column mapping of both generated files. */
export const COLUMN_MAPPING = { externalId: "txn_id", amount: "amount", currency: "currency", bookedDate: "booked_at", reference: "reference" };

/** What the generator knows: which bank lines belong to which ledger line, and the category of each. */
export interface Truth {
  /** Ledger external id → its bank external ids (empty for onlyLeft). */
  bankOf: Map<string, string[]>;
  /** Ledger external id → category. */
  categoryOf: Map<string, Category>;
  /** Bank lines with no ledger line. */
  onlyRight: Set<string>;
}

/** mulberry32: small, fast, deterministic. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CURRENCIES = ["EUR", "EUR", "EUR", "USD", "USD", "GBP"];
const DAY_MS = 86_400_000;
const START = Date.UTC(2026, 0, 1);

const money = (cents: number) => `${cents < 0 ? "-" : ""}${Math.floor(Math.abs(cents) / 100)}.${String(Math.abs(cents) % 100).padStart(2, "0")}`;
const isoDay = (day: number) => new Date(START + day * DAY_MS).toISOString().slice(0, 10);

function swapTwo(reference: string, at: number): string {
  const i = 4 + (at % (reference.length - 5));
  return reference.slice(0, i) + reference[i + 1] + reference[i] + reference.slice(i + 2);
}

/**
 * Writes `count` ledger lines (and their bank lines) through `emit(side, csvLine)`, in ledger order; bank lines
 * are emitted as they are made (files need no particular order). Returns the truth when `keepTruth` is set.
 */
export function generate(
  count: number,
  emit: (side: "left" | "right", line: string) => void,
  options: { seed?: number; days?: number; keepTruth?: boolean; mix?: Record<Category, number> } = {},
): Truth | null {
  const next = random(options.seed ?? 42);
  const days = options.days ?? 365;
  const mix = options.mix ?? DEFAULT_MIX;
  const truth: Truth | null = options.keepTruth ? { bankOf: new Map(), categoryOf: new Map(), onlyRight: new Set() } : null;
  const order: Category[] = ["exact", "drift", "typo", "lag", "split", "mismatch", "onlyLeft"];
  let bankSeq = 0;
  const bank = (cents: number, currency: string, day: number, reference: string) => {
    const id = `B${String(++bankSeq).padStart(8, "0")}`;
    emit("right", `${id},bank-main,${money(cents)},${currency},${isoDay(day)},${reference}`);
    return id;
  };

  for (let i = 0; i < count; i++) {
    const id = `L${String(i + 1).padStart(8, "0")}`;
    const reference = `INV-${String(1_000_000 + i).padStart(8, "0")}`;
    const cents = 100 + Math.floor(next() * 999_900) * (next() < 0.1 ? -1 : 1);
    const currency = CURRENCIES[Math.floor(next() * CURRENCIES.length)]!;
    const day = Math.floor(next() * (days - 12));
    emit("left", `${id},ledger,${money(cents)},${currency},${isoDay(day)},${reference}`);

    let roll = next();
    let category: Category = "exact";
    for (const candidate of order) {
      if (roll < mix[candidate]) {
        category = candidate;
        break;
      }
      roll -= mix[candidate];
    }
    const lag = Math.floor(next() * 3);
    const banked: string[] = [];
    switch (category) {
      case "exact":
        banked.push(bank(cents, currency, day + lag, reference));
        break;
      case "drift":
        banked.push(bank(cents + (next() < 0.5 ? 1 : -1), currency, day + lag, reference));
        break;
      case "typo":
        banked.push(bank(cents, currency, day + lag, swapTwo(reference, i)));
        break;
      case "lag":
        banked.push(bank(cents, currency, day + 5 + Math.floor(next() * 5), reference));
        break;
      case "split": {
        const legs = 2 + Math.floor(next() * 2);
        let rest = cents;
        for (let leg = 1; leg < legs; leg++) {
          const part = Math.trunc(rest / (legs - leg + 1)) + (leg === 1 ? 7 : 0);
          banked.push(bank(part, currency, day + lag, reference));
          rest -= part;
        }
        banked.push(bank(rest, currency, day + lag, reference));
        break;
      }
      case "mismatch":
        banked.push(bank(cents + 500 + Math.floor(next() * 10_000), currency, day + lag, reference));
        break;
      case "onlyLeft":
      case "onlyRight":
        break;
    }
    truth?.bankOf.set(id, banked);
    truth?.categoryOf.set(id, category);
    if (next() < mix.onlyRight) {
      const extra = bank(100 + Math.floor(next() * 999_900), currency, day + lag, `PAY-${String(i).padStart(8, "0")}`);
      truth?.onlyRight.add(extra);
    }
  }
  return truth;
}

/** Both files in memory (tests): CSV texts and the truth. */
export function generateFiles(count: number, seed = 42): { ledger: string; bank: string; truth: Truth } {
  const left = [CSV_HEADER];
  const right = [CSV_HEADER];
  const truth = generate(count, (side, line) => (side === "left" ? left : right).push(line), { seed, keepTruth: true })!;
  return { ledger: left.join("\n") + "\n", bank: right.join("\n") + "\n", truth };
}

/**
 * Properties of the validating SELECT (ingest/validation-sql.ts) run by real PostgreSQL on staged rows: it never
 * fails as a whole, whatever the cells (every value is stored in its column's type or is a row problem); which
 * amounts it accepts, and that an accepted amount is stored exactly as written; digits of other scripts are row
 * problems in a database with ICU collation too; a debit and a credit whose difference does not fit are one.
 */
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { withDatabaseName } from "../../src/db/database-url.js";
import { DATE_FORMATS, parseColumnMapping, resolveColumns } from "../../src/ingest/column-mapping.js";
import { stagingTableSql, validatedRowsSql } from "../../src/ingest/validation-sql.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";

let db: TestDatabase;
let client: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase();
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
  await db?.drop();
});

/**
 * Runs `run` on `on` in a transaction that is rolled back afterwards, with a staging table `staged` for files of
 * `header` and the validating SELECT of `columnMapping` over it.
 */
async function withStaged<T>(on: pg.Client, columnMapping: Record<string, unknown>, header: string[], run: (validate: string) => Promise<T>): Promise<T> {
  const mapping = parseColumnMapping(columnMapping);
  if (!mapping.ok) throw new Error(mapping.message);
  const resolved = resolveColumns(mapping.mapping, header, header.length);
  if (!resolved.ok) throw new Error(resolved.missing.join());
  const validate = validatedRowsSql("staged", { mapping: mapping.mapping, positions: resolved.positions, columnCount: header.length, header });
  await on.query("BEGIN");
  try {
    await on.query(stagingTableSql("staged", header.length));
    return await run(validate);
  } finally {
    await on.query("ROLLBACK");
  }
}

const HEADER = ["id", "amount", "currency", "date"];
const MAPPING = { externalId: "id", amount: "amount", currency: "currency", bookedDate: "date" };

/** What NUMERIC(20,4) holds exactly, written plainly: a sign, 1–16 digits, and optionally a point and 1–4 digits. */
const FITS = /^[+-]?[0-9]{1,16}(\.[0-9]{1,4})?$/;

/** Stages rows of (amount, date) cells on `on` and validates them: each row's stored amount and date (text) and its problems. */
function validateRows(on: pg.Client, cells: [amount: string, date: string][]) {
  return withStaged(on, MAPPING, HEADER, async (validate) => {
    await on.query(
      "INSERT INTO staged SELECT n, 'id' || n, a, 'EUR', d FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(a, d, n)",
      [cells.map(([amount]) => amount), cells.map(([, date]) => date)],
    );
    const { rows } = await on.query<{ amount: string | null; booked_date: string | null; errors: string[] }>(
      `SELECT amount::text, booked_date::text, errors FROM (${validate}) v ORDER BY line_no`,
    );
    return rows;
  });
}

/** Validates `amounts` as the amount cells of staged rows; the stored amount (text) and the amount's issue of each. */
async function validate(amounts: string[]): Promise<{ amount: string | null; issue: string | null }[]> {
  const rows = await validateRows(client, amounts.map((amount) => [amount, "2026-11-24"]));
  return rows.map((row) => ({ amount: row.amount, issue: row.errors.find((error) => error.startsWith("amount")) ?? null }));
}

/** A decimal's digits without leading or trailing zeros and a plus sign ("-0012.5000" → "-12.5", "-0" → "0"). */
function canonical(text: string): string {
  const negative = text.startsWith("-");
  const [whole = "", fraction = ""] = text.replace(/^[+-]/, "").split(".");
  const digits = whole.replace(/^0+(?=\d)/, "") + (fraction.replace(/0+$/, "") ? `.${fraction.replace(/0+$/, "")}` : "");
  return negative && digits !== "0" ? `-${digits}` : digits;
}

const digits = (count: number) => fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: count, maxLength: count });
/** Numbers with any count of digits around the limits (0–18 before the point, none or 0–6 after), signed or not. */
const number = fc
  .tuple(fc.constantFrom("", "+", "-"), fc.integer({ min: 0, max: 18 }), fc.option(fc.integer({ min: 0, max: 6 })))
  .chain(([sign, whole, fraction]) =>
    fc.tuple(digits(whole), fraction === null ? fc.constant(null) : digits(fraction)).map(([w, f]) => `${sign}${w}${f === null ? "" : `.${f}`}`),
  );
/** Amount-like cells: such numbers, some in accounting's parentheses or padded, and strings of number-ish characters. */
const cell = fc.oneof(
  number,
  number.map((text) => `(${text})`),
  number.map((text) => ` ${text} `),
  fc.string({ unit: fc.constantFrom("0", "1", "9", ".", "-", "+", " ", "e", "(", ")"), maxLength: 22 }),
);

it("accepts exactly the amounts NUMERIC(20,4) holds, and stores them as written", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(cell, { minLength: 1, maxLength: 60 }), async (amounts) => {
      const results = await validate(amounts);
      amounts.forEach((text, i) => {
        // Cells are trimmed, and "(12.50)" is accounting's -12.50.
        const plain = text.trim().replace(/^\((.*)\)$/, "-$1");
        const { amount, issue } = results[i]!;
        if (FITS.test(plain)) {
          expect(issue, text).toBeNull();
          expect(amount === null ? null : canonical(amount), text).toBe(canonical(plain));
        } else {
          expect(amount, text).toBeNull();
          expect(issue, text).not.toBeNull();
        }
      });
    }),
    { numRuns: 150 },
  );
});

it("reports digits of other scripts as row errors, also where the database collates with ICU", async () => {
  // A database of ICU collation (PostgreSQL's regex `\d` matches any script's digits there, `[0-9]` does not).
  const name = `icu_${db.name}`;
  const server = new pg.Client({ connectionString: inject("postgresServerUrl") });
  await server.connect();
  await server.query(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`);
  const icu = new pg.Client({ connectionString: withDatabaseName(inject("postgresServerUrl"), name) });
  try {
    await icu.connect();
    expect((await icu.query<{ matches: boolean }>("SELECT '\u0662' ~ '\\d' AS matches")).rows[0]!.matches).toBe(true);
    for (const on of [client, icu]) {
      const rows = await validateRows(on, [
        ["12.50", "2026-11-24"],
        ["\u0661\u0662.50", "2026-11-24"], // Arabic-Indic 12.50
        ["12.50", "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0664"], // Arabic-Indic 2026-11-24
        ["12.50", "\uff12\uff10\uff12\uff16-11-24"], // full-width 2026
      ]);
      expect(rows.map((row) => [row.amount, row.booked_date])).toEqual([["12.50", "2026-11-24"], [null, "2026-11-24"], ["12.50", null], ["12.50", null]]);
      expect(rows[1]!.errors).toEqual(["amount\u001f'\u0661\u0662.50' is not a number"]);
      expect(rows[2]!.errors).toEqual(["date\u001f'\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0664' is not a date in format YYYY-MM-DD"]);
      expect(rows[3]!.errors).toHaveLength(1);
    }
  } finally {
    await icu.end();
    await server.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await server.end();
  }
});

it("refuses, as a row problem, a debit and a credit whose difference NUMERIC(20,4) cannot hold", async () => {
  const header = ["id", "debit", "credit", "currency", "date"];
  const split = { externalId: "id", debit: "debit", credit: "credit", currency: "currency", bookedDate: "date" };
  const max = "9999999999999999.9999";
  await withStaged(client, split, header, async (validate) => {
    await client.query(
      `INSERT INTO staged VALUES (1, 'a', '', '${max}', 'EUR', '2026-11-24'), (2, 'b', '-${max}', '', 'EUR', '2026-11-24'),
        (3, 'c', '-${max}', '${max}', 'EUR', '2026-11-24'), (4, 'd', '-1', '${max}', 'EUR', '2026-11-24'), (5, 'e', '5', '${max}', 'EUR', '2026-11-24')`,
    );
    // The stored type: an amount the validation passed must fit it (it would fail the whole insert otherwise).
    const { rows } = await client.query<{ amount: string | null; errors: string[] }>(`SELECT amount::numeric(20,4)::text AS amount, errors FROM (${validate}) v ORDER BY line_no`);
    expect(rows).toEqual([
      { amount: max, errors: [] },
      { amount: max, errors: [] },
      { amount: null, errors: [`credit\u001f'${max}' minus debit '-${max}' has more than 16 digits before the decimal point`] },
      { amount: null, errors: [`credit\u001f'${max}' minus debit '-1' has more than 16 digits before the decimal point`] },
      { amount: "9999999999999994.9999", errors: [] },
    ]);
  });
});

/** Cells of any kind a file may hold where amounts, dates and codes are expected: numbers, dates, junk. */
const anyCell = fc.oneof(
  number,
  number.map((text) => `(${text})`),
  fc.string({ unit: fc.constantFrom(..."0123456789.,-+() '/eE", "\u0662", "\uff12", "é"), maxLength: 24 }),
  fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }), fc.nat(5)).map(([y, m, d, format]) =>
    [`${y}-${m}-${d}`, `${d}/${m}/${y}`, `${m}/${d}/${y}`, `${d}.${m}.${y}`, `${d}-${m}-${y}`, `${y}${String(m).padStart(2, "0")}${String(d).padStart(2, "0")}`][format]!,
  ),
  fc.constantFrom("", " ", "EUR", "eur", "EURO", "D", "DR", "C"),
);

/** Mappings of every shape: one amount, debit and credit, a sign column; any date format and separators. */
const anyMapping = fc.record({
  amounts: fc.constantFrom("amount", "debit-credit", "signed"),
  dateFormat: fc.constantFrom(...DATE_FORMATS),
  separators: fc.constantFrom([".", ""], [".", ","], [".", " "], [",", "."], [",", " "], [",", "'"]),
});

it("never fails the statement, whatever the cells: a value is either stored in its column's type or a row problem", async () => {
  const header = ["id", "amount", "debit", "credit", "dc", "currency", "date", "valued", "ref"];
  await fc.assert(
    fc.asyncProperty(anyMapping, fc.array(fc.array(anyCell, { minLength: header.length, maxLength: header.length }), { minLength: 1, maxLength: 30 }), async (shape, rows) => {
      const mapping = {
        externalId: "id",
        ...(shape.amounts === "debit-credit" ? { debit: "debit", credit: "credit" } : { amount: "amount" }),
        ...(shape.amounts === "signed" ? { sign: { column: "dc" } } : {}),
        currency: "currency",
        bookedDate: "date",
        valueDate: "valued",
        reference: "ref",
        dateFormat: shape.dateFormat,
        decimalSeparator: shape.separators[0],
        thousandsSeparator: shape.separators[1],
      };
      await withStaged(client, mapping, header, async (validate) => {
        await client.query(
          `INSERT INTO staged SELECT n, ${header.map((_, i) => `r[${i + 1}]`).join(", ")}
           FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS u(j, n), LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(j)) AS r) x`,
          [JSON.stringify(rows)],
        );
        // The records' column types: what the ingest's INSERT casts to.
        const { rows: validated } = await client.query<{ ok: boolean; complete: boolean }>(
          `SELECT cardinality(errors) = 0 AS ok,
             (external_id IS NOT NULL AND amount::numeric(20,4) IS NOT NULL AND currency::char(3) IS NOT NULL AND booked_date IS NOT NULL) AS complete
           FROM (${validate}) v ORDER BY line_no`,
        );
        for (const row of validated) if (row.ok) expect(row.complete).toBe(true);
      });
    }),
    { numRuns: 200 },
  );
});

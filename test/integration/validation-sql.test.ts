/**
 * Properties of the validating SELECT (ingest/validation-sql.ts) run by real PostgreSQL on staged rows: it never
 * fails as a whole, whatever the cells (every value is stored in its column's type or is a row problem); which
 * amounts it accepts under each pair of separators, that an accepted amount is stored exactly as the number written
 * and that a refused one is quoted as written; digits of other scripts are row problems in a database with ICU
 * collation too; debit and credit cells are unsigned.
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
  if (!resolved.ok) throw new Error(JSON.stringify(resolved));
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

/** A decimal's digits without leading or trailing zeros and a plus sign ("-0012.5000" → "-12.5", "-0" → "0"). */
function canonical(text: string): string {
  const negative = text.startsWith("-");
  const [whole = "", fraction = ""] = text.replace(/^[+-]/, "").split(".");
  const digits = whole.replace(/^0+(?=\d)/, "") + (fraction.replace(/0+$/, "") ? `.${fraction.replace(/0+$/, "")}` : "");
  return negative && digits !== "0" ? `-${digits}` : digits;
}

type AmountColumn = "amount" | "debit" | "credit";
const AMOUNT_HEADER = ["id", "amount", "debit", "credit", "currency", "date"];

/**
 * Validates each of `cells` as the `column` cell of a row (the other amount columns empty) under `columnMapping`,
 * mapped by the names of AMOUNT_HEADER: one amount column, or debit and credit; each row's stored amount (text, in
 * the records' type) and problems.
 */
function validateAmounts(columnMapping: Record<string, unknown>, column: AmountColumn, cells: string[]) {
  const amounts = column === "amount" ? { amount: "amount" } : { debit: "debit", credit: "credit" };
  return withStaged(client, { ...amounts, ...columnMapping }, AMOUNT_HEADER, async (validate) => {
    const cellsOf = AMOUNT_HEADER.slice(1, 4).map((name) => (name === column ? "c" : "''"));
    await client.query(
      `INSERT INTO staged SELECT n, 'id' || n, ${cellsOf.join(", ")}, 'EUR', '2026-11-24' FROM unnest($1::text[]) WITH ORDINALITY AS u(c, n)`,
      [cells],
    );
    const { rows } = await client.query<{ amount: string | null; errors: string[] }>(
      `SELECT amount::numeric(20,4)::text AS amount, errors FROM (${validate}) v ORDER BY line_no`,
    );
    return rows;
  });
}

/**
 * The number an amount cell means under the separators (digits, optionally a point and digits, signed), or null if
 * it is none, stated apart from the SQL: cells are trimmed of spaces; at most one decimal separator, with digits on
 * both sides; thousands separators only between groups of three digits after a first group of one to three; a
 * leading sign or accounting parentheses only where `signed`.
 */
function meaning(cell: string, decimal: string, thousands: string, signed: boolean): string | null {
  let text = cell.replace(/^ +| +$/g, "");
  let sign = "";
  if (signed && text.startsWith("(") && text.endsWith(")")) [sign, text] = ["-", text.slice(1, -1)];
  else if (signed && /^[+-]/.test(text)) [sign, text] = [text[0]!, text.slice(1)];
  const [whole = "", fraction, ...more] = text.split(decimal);
  if (more.length || (fraction !== undefined && !/^[0-9]+$/.test(fraction))) return null;
  const groups = thousands ? whole.split(thousands) : [whole];
  if (!groups.every((group) => /^[0-9]+$/.test(group))) return null;
  if (groups.length > 1 && (groups[0]!.length > 3 || groups.slice(1).some((group) => group.length !== 3))) return null;
  return `${sign}${groups.join("")}${fraction === undefined ? "" : `.${fraction}`}`;
}

/** The problem an amount cell is (its reason, quoting the cell as written and trimmed), or null if it is stored. */
function amountProblem(cell: string, decimal: string, thousands: string, signed: boolean): string | null {
  const text = cell.replace(/^ +| +$/g, "");
  if (text === "") return "is empty";
  const shown = `'${text.replace(/'/g, "''")}'`;
  const value = meaning(text, decimal, thousands, signed);
  if (value === null) {
    const sign = !signed && meaning(text, decimal, thousands, true) !== null;
    return `${shown} ${sign ? "has a sign: debit and credit columns hold unsigned amounts" : "is not a number"}`;
  }
  if (FITS.test(value)) return null;
  return `${shown} ${(value.split(".")[1] ?? "").length > 4 ? "has more than 4 decimal places" : "has more than 16 digits before the decimal point"}`;
}

const digits = (count: number) => fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: count, maxLength: count });
/** Numbers with any count of digits around the limits (0–18 before the point, none or 0–6 after), signed or not. */
const number = fc
  .tuple(fc.constantFrom("", "+", "-"), fc.integer({ min: 0, max: 18 }), fc.option(fc.integer({ min: 0, max: 6 })))
  .chain(([sign, whole, fraction]) =>
    fc.tuple(digits(whole), fraction === null ? fc.constant(null) : digits(fraction)).map(([w, f]) => `${sign}${w}${f === null ? "" : `.${f}`}`),
  );

/** Every pair of separators a mapping may set: [decimal, thousands]. */
const SEPARATORS = [[".", ""], [".", ","], [".", " "], [".", "'"], [",", ""], [",", "."], [",", " "], [",", "'"]] as const;

/**
 * Amount-like cells for the separators: numbers around the limits written with them (thousands in threes, or
 * misplaced, or none; the decimal separator or the other one), signed, in parentheses or padded; and strings of
 * number-ish characters.
 */
const amountCell = (decimal: string, thousands: string) =>
  fc.oneof(
    fc
      .tuple(number, fc.constantFrom(decimal, ".", ","), fc.constantFrom("none", "threes", "misplaced"), fc.nat(), fc.constantFrom("", "()", " "))
      .map(([plain, point, grouping, at, wrap]) => {
        const [, sign = "", whole = "", fraction] = /^([+-]?)([0-9]*)(?:\.([0-9]*))?$/.exec(plain)!;
        let written = whole;
        if (thousands && grouping === "threes") written = whole.replace(/\B(?=([0-9]{3})+$)/g, thousands);
        const cut = at % (whole.length + 1);
        if (thousands && grouping === "misplaced") written = `${whole.slice(0, cut)}${thousands}${whole.slice(cut)}`;
        const text = `${sign}${written}${fraction === undefined ? "" : `${point}${fraction}`}`;
        return wrap === "()" ? `(${text})` : `${wrap}${text}${wrap}`;
      }),
    fc.string({ unit: fc.constantFrom(..."0123456789.,' -+()"), maxLength: 24 }),
  );

it("reads amounts by the mapping's separators only, stores them as the number written, and quotes a refused cell as written", async () => {
  const cases = fc
    .tuple(fc.constantFrom(...SEPARATORS), fc.constantFrom<AmountColumn>("amount", "debit", "credit"))
    .chain(([[decimal, thousands], column]) =>
      fc.tuple(fc.constant({ decimal, thousands, column }), fc.array(amountCell(decimal, thousands), { minLength: 1, maxLength: 40 })),
    );
  await fc.assert(
    fc.asyncProperty(cases, async ([{ decimal, thousands, column }, cells]) => {
      const rows = await validateAmounts({ decimalSeparator: decimal, thousandsSeparator: thousands }, column, cells);
      cells.forEach((cell, i) => {
        const { amount, errors } = rows[i]!;
        const signed = column === "amount";
        const problem = amountProblem(cell, decimal, thousands, signed);
        if (problem === null) {
          const value = canonical(meaning(cell, decimal, thousands, signed)!);
          expect({ amount: canonical(amount!), errors }, cell).toEqual({ amount: column === "debit" ? canonical(`-${value}`) : value, errors: [] });
        } else {
          // Debit and credit may each be empty, not both.
          const issue = !signed && problem === "is empty" ? "debit\u001fand credit are both empty" : `${column}\u001f${problem}`;
          expect({ amount, errors }, cell).toEqual({ amount: null, errors: [issue] });
        }
      });
    }),
    { numRuns: 150 },
  );
});

it.each([
  // Thousands separators only between groups of three digits (the first of one to three).
  [{ thousandsSeparator: "," }, "1,234,567.5", "1234567.5000", null],
  [{ thousandsSeparator: "," }, "12,50", null, "'12,50' is not a number"],
  [{ thousandsSeparator: "," }, "1,2,3", null, "'1,2,3' is not a number"],
  [{ thousandsSeparator: "," }, "1.234,5", null, "'1.234,5' is not a number"],
  [{ thousandsSeparator: "," }, "1.234,56", null, "'1.234,56' is not a number"],
  [{ thousandsSeparator: "," }, "1234,567", null, "'1234,567' is not a number"],
  [{ decimalSeparator: ",", thousandsSeparator: "." }, "-1.234.567,8", "-1234567.8000", null],
  [{ decimalSeparator: ",", thousandsSeparator: "." }, "1.23", null, "'1.23' is not a number"],
  [{ decimalSeparator: ",", thousandsSeparator: "." }, "1,234.5", null, "'1,234.5' is not a number"],
  [{ thousandsSeparator: " " }, "1 234", "1234.0000", null],
  [{ thousandsSeparator: " " }, "1 2", null, "'1 2' is not a number"],
  [{ thousandsSeparator: "'" }, "12'50", null, "'12''50' is not a number"],
  // Only the configured decimal separator separates decimals.
  [{ decimalSeparator: "," }, "1,5", "1.5000", null],
  [{ decimalSeparator: "," }, "1.234", null, "'1.234' is not a number"],
  [{}, "1,5", null, "'1,5' is not a number"],
  // Quoted as written.
  [{ decimalSeparator: ",", thousandsSeparator: " " }, "1\u00a0234,50", null, "'1\u00a0234,50' is not a number"],
  [{ decimalSeparator: ",", thousandsSeparator: "." }, "1.234,56789", null, "'1.234,56789' has more than 4 decimal places"],
  [{ thousandsSeparator: "," }, "12,345,678,901,234,567", null, "'12,345,678,901,234,567' has more than 16 digits before the decimal point"],
  [{}, "(12.50)", "-12.5000", null],
  [{}, "( 12.50 )", null, "'( 12.50 )' is not a number"],
  [{}, "(-12.50)", null, "'(-12.50)' is not a number"],
  [{}, "()", null, "'()' is not a number"],
])("with %j reads the amount %j as %s (%s)", async (separators, cell, amount, reason) => {
  const [row] = await validateAmounts(separators, "amount", [cell]);
  expect(row).toEqual({ amount, errors: reason === null ? [] : [`amount\u001f${reason}`] });
});

it("refuses a sign or accounting parentheses in a debit or credit cell as a row problem naming the column", async () => {
  const sign = "has a sign: debit and credit columns hold unsigned amounts";
  expect(await validateAmounts({}, "debit", ["-12.50", "(3.00)", "+1", "12.50"])).toEqual([
    { amount: null, errors: [`debit\u001f'-12.50' ${sign}`] },
    { amount: null, errors: [`debit\u001f'(3.00)' ${sign}`] },
    { amount: null, errors: [`debit\u001f'+1' ${sign}`] },
    { amount: "-12.5000", errors: [] },
  ]);
  expect(await validateAmounts({ decimalSeparator: ",", thousandsSeparator: "." }, "credit", ["-4", "(1.234,50)", "1.234,50"])).toEqual([
    { amount: null, errors: [`credit\u001f'-4' ${sign}`] },
    { amount: null, errors: [`credit\u001f'(1.234,50)' ${sign}`] },
    { amount: "1234.5000", errors: [] },
  ]);
});

it("says when a date is well formed but outside the years it accepts", async () => {
  const rows = await validateRows(client, [["1.00", "0001-01-01"], ["1.00", "9999-12-31"], ["1.00", "1900-01-01"], ["1.00", "2999-12-31"], ["1.00", "2026-02-30"]]);
  expect(rows.map((row) => row.booked_date)).toEqual([null, null, "1900-01-01", "2999-12-31", null]);
  expect(rows.map((row) => row.errors)).toEqual([
    ["date\u001f'0001-01-01' is outside the years 1900 to 2999"],
    ["date\u001f'9999-12-31' is outside the years 1900 to 2999"],
    [],
    [],
    ["date\u001f'2026-02-30' is not a date in format YYYY-MM-DD"],
  ]);
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

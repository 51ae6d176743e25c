/**
 * Builds the SQL that validates and normalizes a staged file set-wise, inside PostgreSQL.
 *
 * The file's rows sit in a temporary staging table as text (`line_no`, `c0` … `cN`), loaded by COPY. One SELECT
 * then turns each row into a record — exact NUMERIC amounts, calendar dates, trimmed text, upper-case currency —
 * and lists, per row, every problem as `column <US> reason`. Nothing in it can raise: every cast is guarded by
 * the check that makes it safe, so one bad row never aborts the statement. Settings that reach the SQL text
 * (separators, date format, column names) come from a validated mapping and are quoted as literals.
 */
import type { ColumnMapping, DateFormat, MappedField } from "./column-mapping.js";

/** Separates the column from the reason in an error entry (ASCII unit separator). */
export const ISSUE_SEPARATOR = "\u001f";

export interface StagedLayout {
  mapping: ColumnMapping;
  /** 0-based position of each mapped field in the file. */
  positions: Map<MappedField, number>;
  columnCount: number;
  /** Header names, or null when the file has no header. */
  header: string[] | null;
}

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Staging table DDL: text columns, dropped at commit. */
export function stagingTableSql(table: string, columnCount: number): string {
  const columns = Array.from({ length: columnCount }, (_, i) => `c${i} text`).join(", ");
  return `CREATE TEMP TABLE ${table} (line_no integer NOT NULL, ${columns}) ON COMMIT DROP`;
}

/** COPY options matching the mapping (PostgreSQL converts Windows-1252 to the database encoding itself). */
export function copySql(table: string, mapping: ColumnMapping): string {
  return `COPY ${table} FROM STDIN (FORMAT csv, DELIMITER ${literal(mapping.delimiter)}, QUOTE ${literal(mapping.quote)}, ENCODING ${literal(mapping.encoding)})`;
}

/**
 * How each date format is recognised (a plain regex match, which is fast) and how its parts are cut out
 * (split_part/substr; capture-group regexes cost ~20 µs a row in PostgreSQL, too slow for millions of rows).
 * Digits are `[0-9]`, never `\d`: in a database with ICU collation `\d` also matches other scripts' digits
 * (Arabic-Indic, full-width), which the parts' `::int` cast then refuses, failing the whole statement.
 */
const DATE_FORMATS_SQL: Record<DateFormat, { shape: string; year: (t: string) => string; month: (t: string) => string; day: (t: string) => string }> = {
  "YYYY-MM-DD": { shape: "^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$", year: (t) => `split_part(${t}, '-', 1)`, month: (t) => `split_part(${t}, '-', 2)`, day: (t) => `split_part(${t}, '-', 3)` },
  "DD/MM/YYYY": { shape: "^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}$", year: (t) => `split_part(${t}, '/', 3)`, month: (t) => `split_part(${t}, '/', 2)`, day: (t) => `split_part(${t}, '/', 1)` },
  "MM/DD/YYYY": { shape: "^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}$", year: (t) => `split_part(${t}, '/', 3)`, month: (t) => `split_part(${t}, '/', 1)`, day: (t) => `split_part(${t}, '/', 2)` },
  "DD.MM.YYYY": { shape: "^[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{4}$", year: (t) => `split_part(${t}, '.', 3)`, month: (t) => `split_part(${t}, '.', 2)`, day: (t) => `split_part(${t}, '.', 1)` },
  "DD-MM-YYYY": { shape: "^[0-9]{1,2}-[0-9]{1,2}-[0-9]{4}$", year: (t) => `split_part(${t}, '-', 3)`, month: (t) => `split_part(${t}, '-', 2)`, day: (t) => `split_part(${t}, '-', 1)` },
  YYYYMMDD: { shape: "^[0-9]{8}$", year: (t) => `substr(${t}, 1, 4)`, month: (t) => `substr(${t}, 5, 2)`, day: (t) => `substr(${t}, 7, 2)` },
};

type Separators = Pick<ColumnMapping, "decimalSeparator" | "thousandsSeparator">;

/** Accounting parentheses as a minus sign: "(12.50)" is "-12.50" ("(-12.50)" is "--12.50", which no shape matches). */
const withoutParentheses = (text: string) =>
  `CASE WHEN ${text} LIKE '(%)' THEN '-' || substr(${text}, 2, length(${text}) - 2) ELSE ${text} END`;

/**
 * How an amount may be written, as a regex: digits, with the thousands separator (if the mapping has one) only
 * between groups of three digits after a first group of one to three ("12,50" is not 1250), then optionally the
 * decimal separator (only it: "1.234" is no number where that is ",") and digits; where `signed`, a leading sign.
 * How many digits NUMERIC(20,4) holds is checked by lengths (amountFits); the grouping's {1,3} and {3} are the only
 * bounded repetitions, and small ones. The grouping costs about 0.4 s per million rows (only where the mapping has
 * a thousands separator), less than the other forms measured: two regexes, or unbounded groups and a second check.
 */
function amountShape({ decimalSeparator, thousandsSeparator }: Separators, signed: boolean): string {
  const whole = thousandsSeparator ? `([0-9]+|[0-9]{1,3}(${escapeRegex(thousandsSeparator)}[0-9]{3})+)` : "[0-9]+";
  return `^${signed ? "[+-]?" : ""}${whole}(${escapeRegex(decimalSeparator)}[0-9]+)?$`;
}

/**
 * Whether an amount `text` has its shape and at most 16 integer digits and 4 decimals (what NUMERIC(20,4) holds
 * exactly). The digits are counted by the lengths of the parts: the same test as a shape with `[0-9]{1,16}` and
 * `[0-9]{1,4}`, but PostgreSQL's regex engine expands bounded repetitions into a larger automaton: 1.0 s per million
 * rows for such a pattern, 0.45 s for this test.
 */
function amountFits(text: string, separators: Separators, shape: string): string {
  const point = literal(separators.decimalSeparator);
  let whole = `split_part(${text}, ${point}, 1)`;
  if (separators.thousandsSeparator) whole = `replace(${whole}, ${literal(separators.thousandsSeparator)}, '')`;
  return `(${text} ~ ${literal(shape)} AND length(ltrim(${whole}, '+-')) <= 16 AND length(split_part(${text}, ${point}, 2)) <= 4)`;
}

/** An amount that fits, as PostgreSQL's numeric reads it: a point for the decimal separator, no thousands separators. */
function numericAmount(text: string, { decimalSeparator, thousandsSeparator }: Separators): string {
  // translate() maps the decimal separator to a point and drops the thousands separator (it has no counterpart).
  if (decimalSeparator === "." && !thousandsSeparator) return `${text}::numeric`;
  return `translate(${text}, ${literal(decimalSeparator + thousandsSeparator)}, '.')::numeric`;
}

/** The years a date may have: a wider range is more often a typo (0026, 20026) than a real booking. */
const [FIRST_YEAR, LAST_YEAR] = [1900, 2999];
const MAX_TEXT = 4000;
const MAX_EXTERNAL_ID = 200;

/**
 * The validating SELECT over `table`: one row per staged row with `line_no`, the normalized record fields
 * (NULL where invalid) and `errors text[]`.
 */
export function validatedRowsSql(table: string, layout: StagedLayout): string {
  const { mapping, positions, header } = layout;
  const columnName = (field: MappedField) => {
    const position = positions.get(field)!;
    return header ? header[position] : `column ${position + 1}`;
  };
  const has = (field: MappedField) => positions.has(field);
  const issue = (field: MappedField, reason: string) => `${literal(`${columnName(field)}${ISSUE_SEPARATOR}`)} || ${reason}`;
  const shown = (expr: string) => `quote_literal(left(${expr}, 60))`;

  // Four levels, each computed once per row (OFFSET 0 stops PostgreSQL from flattening them into one, which
  // would re-evaluate every expression wherever it is used): t = trimmed cells, n = normalized values and the
  // result of each (costly) regex match, then the same with the date parts as integers and whether each amount
  // fits, outer = typed outputs and the list of problems.
  const trimmed: string[] = [];
  for (const [field, position] of positions) trimmed.push(`btrim(coalesce(s.c${position}, '')) AS ${field}`);
  const normalized: string[] = [];
  const parts: string[] = [];
  const checks: string[] = [];
  const outputs: string[] = [];

  // External id: required.
  normalized.push("t.externalId AS external_id");
  checks.push(`CASE WHEN n.external_id = '' THEN ${issue("externalId", "'is empty'")}
    WHEN length(n.external_id) > ${MAX_EXTERNAL_ID} THEN ${issue("externalId", `'is longer than ${MAX_EXTERNAL_ID} characters'`)} END`);
  outputs.push("n.external_id");

  // Amount: one signed column, or unsigned debit and credit columns, optionally with a sign column. A signed column
  // is the amount (required); an unsigned one is a debit or a credit (either may be empty, not both). Each cell is
  // kept as written, for the messages, and as checked (accounting parentheses a minus sign, in a signed column).
  const amountColumn = (field: MappedField, alias: string, signed: boolean) => {
    const [text, checked] = [`n.${alias}_text`, `n.${alias}`];
    const shape = amountShape(mapping, signed);
    normalized.push(`t.${field} AS ${alias}_text`, `${signed ? withoutParentheses(`t.${field}`) : `t.${field}`} AS ${alias}`);
    parts.push(`${amountFits(checked, mapping, shape)} AS ${alias}_ok`);
    const unshaped = signed
      ? "' is not a number'"
      : `CASE WHEN ${withoutParentheses(text)} ~ ${literal(amountShape(mapping, true))}
          THEN ' has a sign: debit and credit columns hold unsigned amounts' ELSE ' is not a number' END`;
    checks.push(`CASE WHEN ${signed ? "" : `${text} <> '' AND `}NOT n.${alias}_ok THEN ${issue(
      field,
      `CASE WHEN ${text} = '' THEN 'is empty' ELSE ${shown(text)} || CASE WHEN ${checked} !~ ${literal(shape)} THEN ${unshaped}
        WHEN length(split_part(${checked}, ${literal(mapping.decimalSeparator)}, 2)) > 4 THEN ' has more than 4 decimal places'
        ELSE ' has more than 16 digits before the decimal point' END END`,
    )} END`);
  };
  let amount: string;
  if (has("debit")) {
    amountColumn("debit", "debit", false);
    amountColumn("credit", "credit", false);
    checks.push(`CASE WHEN n.debit = '' AND n.credit = '' THEN ${issue("debit", "'and credit are both empty'")} END`);
    // Both unsigned and below 1e16, so their difference fits NUMERIC(20,4) too. The casts are in a CASE, not after an
    // AND: PostgreSQL does not promise to evaluate an AND's operands in order, and the casts need the checks.
    const parsed = `(n.debit = '' OR n.debit_ok) AND (n.credit = '' OR n.credit_ok) AND (n.debit <> '' OR n.credit <> '')`;
    const value = (alias: string) => `CASE WHEN n.${alias} = '' THEN 0 ELSE ${numericAmount(`n.${alias}`, mapping)} END`;
    amount = `CASE WHEN ${parsed} THEN ${value("credit")} - ${value("debit")} END`;
  } else {
    amountColumn("amount", "amount", true);
    amount = `CASE WHEN n.amount_ok THEN ${numericAmount("n.amount", mapping)} END`;
  }
  if (mapping.sign) {
    const negatives = mapping.sign.negativeValues.map((value) => literal(value.toUpperCase())).join(", ");
    normalized.push(`upper(t.sign) AS sign`);
    amount = `CASE WHEN n.sign IN (${negatives}) THEN -abs(${amount}) ELSE ${amount} END`;
  }
  outputs.push(`${amount} AS amount`);

  // Currency: a column or a fixed code.
  if (has("currency")) {
    normalized.push("upper(t.currency) AS currency", "upper(t.currency) ~ '^[A-Z]{3}$' AS currency_ok");
    checks.push(`CASE WHEN NOT n.currency_ok THEN ${issue("currency", `CASE WHEN n.currency = '' THEN 'is empty' ELSE ${shown("n.currency")} || ' is not a 3-letter ISO 4217 code' END`)} END`);
    outputs.push(`CASE WHEN n.currency_ok THEN n.currency END AS currency`);
  } else {
    outputs.push(`${literal(mapping.fixedCurrency!)} AS currency`);
  }

  // Dates: the shape is matched once; only then are the parts cut out as integers (once, in their own level) and
  // range-checked with plain arithmetic, so that make_date never sees an impossible date. (Cutting the parts in
  // every expression that needs them, and finding the month's length with interval arithmetic, cost more than all
  // the other checks together.)
  const format = DATE_FORMATS_SQL[mapping.dateFormat];
  const date = (field: MappedField, alias: string, required: boolean) => {
    normalized.push(`t.${field} AS ${alias}_text`, `t.${field} ~ ${literal(format.shape)} AS ${alias}_shaped`);
    const part = (cut: (text: string) => string, name: string) => `CASE WHEN n.${alias}_shaped THEN ${cut(`n.${alias}_text`)}::int END AS ${alias}_${name}`;
    parts.push(part(format.year, "y"), part(format.month, "m"), part(format.day, "d"));
    const [y, m, d] = [`n.${alias}_y`, `n.${alias}_m`, `n.${alias}_d`];
    const monthLength = `CASE WHEN ${m} = 2 THEN CASE WHEN ${y} % 4 = 0 AND (${y} % 100 <> 0 OR ${y} % 400 = 0) THEN 29 ELSE 28 END
      WHEN ${m} IN (4, 6, 9, 11) THEN 30 ELSE 31 END`;
    const inYears = `${y} BETWEEN ${FIRST_YEAR} AND ${LAST_YEAR}`;
    const valid = `coalesce(${inYears} AND ${m} BETWEEN 1 AND 12 AND ${d} BETWEEN 1 AND ${monthLength}, false)`;
    const empty = `n.${alias}_text = ''`;
    checks.push(`CASE WHEN ${required ? "" : `NOT ${empty} AND `}NOT ${valid} THEN ${issue(
      field,
      `CASE WHEN ${empty} THEN 'is empty' ELSE ${shown(`n.${alias}_text`)} || CASE WHEN NOT ${inYears}
        THEN ' is outside the years ${FIRST_YEAR} to ${LAST_YEAR}' ELSE ' is not a date in format ${mapping.dateFormat}' END END`,
    )} END`);
    outputs.push(`CASE WHEN ${valid} THEN make_date(${y}, ${m}, ${d}) END AS ${alias}`);
  };
  date("bookedDate", "booked_date", true);
  if (has("valueDate")) date("valueDate", "value_date", false);
  else outputs.push("NULL::date AS value_date");

  // Free text: trimmed, bounded.
  for (const field of ["reference", "description", "counterparty"] as const) {
    if (!has(field)) {
      outputs.push(`''::text AS ${field}`);
      continue;
    }
    normalized.push(`t.${field} AS ${field}`);
    checks.push(`CASE WHEN length(n.${field}) > ${MAX_TEXT} THEN ${issue(field, `'is longer than ${MAX_TEXT} characters'`)} END`);
    outputs.push(`n.${field}`);
  }

  // Unmapped columns are kept as extras.
  const extras = extrasKeys(header, layout.columnCount, new Set(positions.values())).map(([i, key]) => `${literal(key)}, s.c${i}`);
  const chunks: string[] = [];
  for (let i = 0; i < extras.length; i += 50) chunks.push(`jsonb_build_object(${extras.slice(i, i + 50).join(", ")})`);
  trimmed.push(`${chunks.length ? `jsonb_strip_nulls(${chunks.join(" || ")})` : `'{}'::jsonb`} AS extras`);
  normalized.push("t.extras");
  outputs.push("n.extras");

  // Column aliases are quoted: field names are camelCase.
  const quoteAliases = (sqlText: string) => sqlText.replace(/\b(t|n)\.(externalId|bookedDate|valueDate)\b/g, '$1."$2"');
  return quoteAliases(`SELECT n.line_no, ${outputs.join(",\n  ")},
  array_remove(ARRAY[${checks.join(",\n    ")}]::text[], NULL) AS errors
FROM (
  SELECT n.*, ${parts.join(",\n    ")}
  FROM (
    SELECT t.line_no, ${normalized.join(",\n      ")}
    FROM (SELECT s.line_no, ${trimmed.join(", ").replace(/ AS (externalId|bookedDate|valueDate)\b/g, ' AS "$1"')} FROM ${table} s OFFSET 0) t
    OFFSET 0
  ) n
  OFFSET 0
) n`);
}

/**
 * The key of each unmapped column in a record's `extras`: its header name, or `column_N` for a column without one
 * (or in a file without a header). A key already taken gets " (2)", " (3)"…: a name the header repeats keeps every
 * column's value.
 */
function extrasKeys(header: string[] | null, columnCount: number, mapped: Set<number>): [position: number, key: string][] {
  const taken = new Set<string>();
  const keys: [number, string][] = [];
  for (let i = 0; i < columnCount; i++) {
    if (mapped.has(i)) continue;
    const name = header?.[i] || `column_${i + 1}`;
    let key = name;
    for (let n = 2; taken.has(key); n++) key = `${name} (${n})`;
    taken.add(key);
    keys.push([i, key]);
  }
  return keys;
}

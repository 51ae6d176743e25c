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
const regexLiteral = (text: string) => literal(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));

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

/**
 * A plain decimal number; at most 16 integer digits and 4 decimals (what NUMERIC(20,4) holds exactly) are checked
 * by the lengths of its parts: the same test as `^[+-]?[0-9]{1,16}(\.[0-9]{1,4})?$`, but PostgreSQL's regex engine
 * expands bounded repetitions into a larger automaton: 1.0 s per million rows for that pattern, 0.45 s for this test.
 */
const AMOUNT_SHAPE = "^[+-]?[0-9]+(\\.[0-9]+)?$";
const amountFits = (text: string) =>
  `(${text} ~ ${literal(AMOUNT_SHAPE)} AND length(ltrim(split_part(${text}, '.', 1), '+-')) <= 16 AND length(split_part(${text}, '.', 2)) <= 4)`;
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

  /** An amount's text with separators normalized and accounting parentheses turned into a minus sign. */
  const normalizedAmount = (field: MappedField) => {
    let expr = `t.${field}`;
    if (mapping.thousandsSeparator) expr = `replace(${expr}, ${literal(mapping.thousandsSeparator)}, '')`;
    if (mapping.decimalSeparator !== ".") expr = `replace(${expr}, ${literal(mapping.decimalSeparator)}, '.')`;
    return `CASE WHEN ${expr} LIKE '(%)' THEN '-' || substr(${expr}, 2, length(${expr}) - 2) ELSE ${expr} END`;
  };

  // External id: required.
  normalized.push("t.externalId AS external_id");
  checks.push(`CASE WHEN n.external_id = '' THEN ${issue("externalId", "'is empty'")}
    WHEN length(n.external_id) > ${MAX_EXTERNAL_ID} THEN ${issue("externalId", `'is longer than ${MAX_EXTERNAL_ID} characters'`)} END`);
  outputs.push("n.external_id");

  // Amount: one signed column, or debit and credit, optionally with a sign column.
  const amountColumn = (field: MappedField, alias: string) => {
    normalized.push(`${normalizedAmount(field)} AS ${alias}`);
    parts.push(`${amountFits(`n.${alias}`)} AS ${alias}_ok`);
  };
  const amountIssue = (field: MappedField, alias: string, allowEmpty: boolean) =>
    `CASE WHEN ${allowEmpty ? `n.${alias} <> '' AND ` : ""}NOT n.${alias}_ok THEN ${issue(
      field,
      `CASE WHEN n.${alias} = '' THEN 'is empty' WHEN n.${alias} ~ '^[+-]?[0-9]+\\.[0-9]{5,}$' THEN ${shown(`n.${alias}`)} || ' has more than 4 decimal places' ELSE ${shown(`n.${alias}`)} || ' is not a number' END`,
    )} END`;
  let amount: string;
  if (has("debit")) {
    amountColumn("debit", "debit");
    amountColumn("credit", "credit");
    checks.push(amountIssue("debit", "debit", true), amountIssue("credit", "credit", true));
    checks.push(`CASE WHEN n.debit = '' AND n.credit = '' THEN ${issue("debit", "'and credit are both empty'")} END`);
    // Each fits NUMERIC(20,4), but their difference may not (a credit and a negative debit of 16 digits each).
    // Nested CASEs: PostgreSQL does not promise to evaluate an AND's operands in order, and the casts need the checks.
    const parsed = `(n.debit = '' OR n.debit_ok) AND (n.credit = '' OR n.credit_ok) AND (n.debit <> '' OR n.credit <> '')`;
    const net = `coalesce(nullif(n.credit, '')::numeric, 0) - coalesce(nullif(n.debit, '')::numeric, 0)`;
    checks.push(`CASE WHEN ${parsed} THEN CASE WHEN abs(${net}) >= 1e16 THEN ${issue(
      "credit",
      `${shown("n.credit")} || ' minus debit ' || ${shown("n.debit")} || ' has more than 16 digits before the decimal point'`,
    )} END END`);
    amount = `CASE WHEN ${parsed} THEN CASE WHEN abs(${net}) < 1e16 THEN ${net} END END`;
  } else {
    amountColumn("amount", "amount");
    checks.push(amountIssue("amount", "amount", false));
    amount = `CASE WHEN n.amount_ok THEN n.amount::numeric END`;
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
    const valid = `coalesce(${y} BETWEEN 1900 AND 2999 AND ${m} BETWEEN 1 AND 12 AND ${d} BETWEEN 1 AND ${monthLength}, false)`;
    const empty = `n.${alias}_text = ''`;
    checks.push(`CASE WHEN ${required ? "" : `NOT ${empty} AND `}NOT ${valid} THEN ${issue(
      field,
      `CASE WHEN ${empty} THEN 'is empty' ELSE ${shown(`n.${alias}_text`)} || ' is not a date in format ${mapping.dateFormat}' END`,
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

  // Unmapped columns are kept as extras, by header name (or "column_N").
  const mappedPositions = new Set(positions.values());
  const extras: string[] = [];
  for (let i = 0; i < layout.columnCount; i++) {
    if (!mappedPositions.has(i)) extras.push(`${literal(header?.[i] || `column_${i + 1}`)}, s.c${i}`);
  }
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

/**
 * How a data source's CSV files map to record fields, and how they are formatted. Stored as JSON on the data
 * source (`columnMapping`), validated here with zod so that a bad mapping is refused when it is saved, naming the
 * exact setting that is wrong, rather than when a file arrives.
 */
import { z } from "zod";
import { levenshteinSimilarity } from "../reconcile/text.js";

/** A column: its header name (matched case-insensitively, trimmed) or its 1-based position. */
const column = z.union([z.string().trim().min(1), z.number().int().min(1).max(10_000)]);

/**
 * The delimiter or the quote: one ASCII character, neither a line break nor a digit. The framer sends each record
 * to COPY as `<line number><delimiter><record>`, so a digit as either would run into the line number.
 */
const csvCharacter = z
  .string()
  .regex(/^[\x01-\x7f]$/, "must be one ASCII character")
  .regex(/^[^0-9\r\n]$/, "must not be a digit or a line break");

export const DATE_FORMATS = ["YYYY-MM-DD", "DD/MM/YYYY", "MM/DD/YYYY", "DD.MM.YYYY", "DD-MM-YYYY", "YYYYMMDD"] as const;
export type DateFormat = (typeof DATE_FORMATS)[number];

/**
 * The settings of a column mapping. `strict`: a setting it does not know is refused (a misspelt "refrence" would
 * otherwise be dropped and the column silently not mapped); not strict for mappings stored before that rule, which
 * are read as they were.
 */
function mappingSchema(strict: boolean) {
  const object = strict ? z.strictObject : z.object;
  return object({
    externalId: column.default("id"),
    /** A signed amount column; or `debit` and `credit` columns; or `amount` with a `sign` column. */
    amount: column.optional(),
    debit: column.optional(),
    credit: column.optional(),
    sign: object({ column, negativeValues: z.array(z.string().trim().min(1)).min(1).default(["D", "DR", "DEBIT", "-"]) }).optional(),
    /** A currency column, or one fixed ISO 4217 code for the whole file. */
    currency: column.optional(),
    fixedCurrency: z.string().regex(/^[A-Z]{3}$/, "must be a 3-letter ISO 4217 code such as EUR").optional(),
    bookedDate: column.default("date"),
    valueDate: column.optional(),
    reference: column.optional(),
    description: column.optional(),
    counterparty: column.optional(),
    dateFormat: z.enum(DATE_FORMATS).default("YYYY-MM-DD"),
    decimalSeparator: z.enum([".", ","]).default("."),
    thousandsSeparator: z.enum(["", ",", ".", " ", "'"]).default(""),
    delimiter: csvCharacter.default(","),
    quote: csvCharacter.default('"'),
    encoding: z.enum(["UTF8", "WIN1252"]).default("UTF8"),
    /** Physical lines to drop before the header (bank exports often start with a title block). */
    skipRows: z.number().int().min(0).max(1000).default(0),
    /** Whether the first row is a header; `auto`: it is when it names the mapped columns. */
    header: z.union([z.boolean(), z.literal("auto")]).default("auto"),
  })
    .superRefine((mapping, ctx) => {
      const hasDebitCredit = mapping.debit !== undefined || mapping.credit !== undefined;
      if (hasDebitCredit && (mapping.debit === undefined || mapping.credit === undefined)) {
        ctx.addIssue({ code: "custom", path: [mapping.debit === undefined ? "debit" : "credit"], message: "debit and credit go together" });
      }
      if (hasDebitCredit && mapping.amount !== undefined) {
        ctx.addIssue({ code: "custom", path: ["amount"], message: "use either amount or debit and credit, not both" });
      }
      if (mapping.sign && hasDebitCredit) {
        ctx.addIssue({ code: "custom", path: ["sign"], message: "a sign column goes with an amount column, not with debit and credit" });
      }
      if (mapping.currency !== undefined && mapping.fixedCurrency !== undefined) {
        ctx.addIssue({ code: "custom", path: ["fixedCurrency"], message: "use either currency or fixedCurrency, not both" });
      }
      if (mapping.decimalSeparator === mapping.thousandsSeparator) {
        ctx.addIssue({ code: "custom", path: ["thousandsSeparator"], message: "must differ from decimalSeparator" });
      }
      if (mapping.delimiter === mapping.quote) {
        ctx.addIssue({ code: "custom", path: ["delimiter"], message: "must differ from quote" });
      }
    })
    .transform((mapping) => ({
      ...mapping,
      // The default layout: id,amount,currency,date,reference,description.
      amount: mapping.amount ?? (mapping.debit === undefined ? "amount" : undefined),
      currency: mapping.currency ?? (mapping.fixedCurrency === undefined ? "currency" : undefined),
    }));
}

export const columnMappingSchema = mappingSchema(true);
const storedMappingSchema = mappingSchema(false);

/** Optional fields picked up by header name when the mapping does not name them and the header has them. */
const OPTIONAL_BY_NAME: [MappedField, string][] = [
  ["reference", "reference"],
  ["description", "description"],
  ["counterparty", "counterparty"],
  ["valueDate", "value_date"],
];

export type ColumnMapping = z.output<typeof columnMappingSchema>;
export type ColumnRef = z.infer<typeof column>;

/** The record fields a mapping can fill, in a fixed order. */
export const MAPPED_FIELDS = [
  "externalId", "amount", "debit", "credit", "currency", "bookedDate", "valueDate", "reference", "description", "counterparty",
] as const;
export type MappedField = (typeof MAPPED_FIELDS)[number] | "sign";

/**
 * A parsed mapping, or the first problem as a dotted path and message (for BAD_USER_INPUT errors). A mapping sent
 * now must use only known settings; a `stored` one (saved before that was checked) has unknown ones ignored.
 */
export function parseColumnMapping(input: unknown, options: { stored?: boolean } = {}): { ok: true; mapping: ColumnMapping } | { ok: false; path: string; message: string } {
  const result = (options.stored ? storedMappingSchema : columnMappingSchema).safeParse(input ?? {});
  if (result.success) return { ok: true, mapping: result.data };
  const issue = result.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    return { ok: false, path: [...issue.path, issue.keys[0]].join("."), message: `is not a setting of a column mapping${suggestion(issue.keys[0]!, issue.path.length ? ["column", "negativeValues"] : SETTINGS)}` };
  }
  return { ok: false, path: issue.path.join("."), message: issue.message };
}

/** Every top-level setting of a column mapping. */
const SETTINGS = Object.keys(columnMappingSchema.in.shape);

/** " (did you mean reference?)" for a setting spelt close to a known one, else nothing. */
function suggestion(unknown: string, known: readonly string[]): string {
  const similarity = (name: string) => levenshteinSimilarity(unknown.toLowerCase(), name.toLowerCase());
  const closest = [...known].sort((a, b) => similarity(b) - similarity(a))[0];
  return closest && similarity(closest) >= 0.75 ? ` (did you mean ${closest}?)` : "";
}

/** Every column a mapping refers to, by the record field it fills. */
export function mappedColumns(mapping: ColumnMapping): [MappedField, ColumnRef][] {
  const columns: [MappedField, ColumnRef][] = [];
  for (const field of MAPPED_FIELDS) {
    const ref = mapping[field];
    if (ref !== undefined) columns.push([field, ref]);
  }
  if (mapping.sign) columns.push(["sign", mapping.sign.column]);
  return columns;
}

/**
 * Where a mapping's columns are in a file: their 0-based positions; or the mapped columns the file lacks; or a name
 * the header repeats (its 1-based fields), which would leave a column looked up by that name ambiguous.
 */
export type ResolvedColumns =
  | { ok: true; positions: Map<MappedField, number> }
  | { ok: false; missing: string[] }
  | { ok: false; repeated: { name: string; fields: number[] } };

/**
 * Resolves column references to 0-based positions, given the header (or null when the file has none). A column
 * mapped by name, or an optional one picked up by name, must be named by exactly one header field; a mapping by
 * position does not care what the header repeats.
 */
export function resolveColumns(mapping: ColumnMapping, header: string[] | null, columnCount: number): ResolvedColumns {
  const byName = new Map<string, number[]>();
  (header ?? []).forEach((name, index) => {
    const key = name.trim().toLowerCase();
    byName.set(key, [...(byName.get(key) ?? []), index]);
  });
  const repeated = (name: string, found: number[]) => ({ ok: false as const, repeated: { name, fields: found.map((index) => index + 1) } });
  const positions = new Map<MappedField, number>();
  const missing: string[] = [];
  for (const [field, ref] of mappedColumns(mapping)) {
    const found = typeof ref === "number" ? (ref <= columnCount ? [ref - 1] : []) : (byName.get(ref.toLowerCase()) ?? []);
    if (found.length > 1) return repeated(String(ref), found);
    if (found.length === 0) missing.push(`${field} (${typeof ref === "number" ? `column ${ref}` : `"${ref}"`})`);
    else positions.set(field, found[0]!);
  }
  for (const [field, name] of OPTIONAL_BY_NAME) {
    const found = byName.get(name) ?? [];
    if (positions.has(field) || found.length === 0) continue;
    if (found.length > 1) return repeated(name, found);
    positions.set(field, found[0]!);
  }
  return missing.length ? { ok: false, missing } : { ok: true, positions };
}

/**
 * For `header: "auto"`: a mapping that names any column needs a header, so the first row is one (and a missing
 * name is then reported as such); a mapping by positions only treats the first row as a header when none of its
 * cells holds a digit (data rows always have an amount and a date).
 */
export function looksLikeHeader(mapping: ColumnMapping, fields: string[]): boolean {
  if (mapping.header !== "auto") return mapping.header;
  if (mappedColumns(mapping).some(([, ref]) => typeof ref === "string")) return true;
  return fields.every((field) => !/\d/.test(field));
}

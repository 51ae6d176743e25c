/**
 * `npm run seed`: loads a small demo so that GraphiQL shows real data at once. It creates the first admin (when
 * there is no user yet, by the same rule as the server's first start), three demo users, the project
 * "Demo: Bank vs Ledger" with a bank statement and a ledger ingested from `seed-data/*.csv`, and one finished
 * reconciliation job with its match groups.
 *
 * It is a fixture loader, not a feature: there is no viewer to authorize, so it writes through Prisma in one
 * transaction instead of going through the services, and it runs its own tiny matcher so the demo does not depend
 * on the real engine. It is idempotent: when the demo project exists it says so and changes nothing.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseString } from "fast-csv";
import { hashPassword, MIN_PASSWORD_LENGTH } from "../auth/passwords.js";
import { loadConfig } from "../config.js";
import { createDatabase, type Database, type Db, type DbTransaction } from "../db/database.js";
import { resolveDatabaseUrl } from "../db/database-server.js";
import { applyMigrations } from "../db/schema-engine.js";
import type { Prisma } from "../generated/prisma/client.js";
import type { DataSourceKind, MatchOutcome, Role } from "../generated/prisma/enums.js";
import { groupIdFactory } from "../modules/jobs/job-results.js";
import { createMetrics } from "../observability/metrics.js";

const DEMO_PROJECT = "Demo: Bank vs Ledger";
const DEMO_PASSWORD = "demo-password-1";
const DEMO_USERS: { key: "maria" | "sam" | "vic"; email: string; name: string; role: Role }[] = [
  { key: "maria", email: "maria@demo.recon", name: "Maria Keller", role: "MANAGER" },
  { key: "sam", email: "sam@demo.recon", name: "Sam Okafor", role: "ANALYST" },
  { key: "vic", email: "vic@demo.recon", name: "Vic Laurent", role: "VIEWER" },
];
/** The default column mapping (record field → CSV column); the demo files also carry a `counterparty` column. */
const COLUMN_MAPPING = {
  externalId: "id", amount: "amount", currency: "currency", bookedDate: "date",
  reference: "reference", description: "description", counterparty: "counterparty",
};
/** Left, then right: the job reconciles the bank statement against the ledger. */
const SOURCES: { name: string; kind: DataSourceKind; file: string }[] = [
  { name: "Bank statement", kind: "BANK_STATEMENT", file: "bank-statement.csv" },
  { name: "Ledger", kind: "LEDGER", file: "ledger.csv" },
];

/** One CSV row, checked and ready to insert (the id is chosen here so match groups can refer to it). */
interface SeedRecord {
  id: string; externalId: string; amount: string; currency: string; bookedDate: Date;
  reference: string; description: string; counterparty: string; rowNumber: number; extras: Record<string, string>;
}
interface SeedFile { source: (typeof SOURCES)[number]; sha256: string; sizeBytes: number; records: SeedRecord[] }

/** Amounts are exact decimals with two places; as integer cents they compare and subtract without a float. */
const cents = (amount: string) => BigInt(amount.replace(".", ""));
function fromCents(value: bigint): string {
  const abs = value < 0n ? -value : value;
  return `${value < 0n ? "-" : ""}${abs / 100n}.${(abs % 100n).toString().padStart(2, "0")}`;
}

/** Parses a CSV with fast-csv; rejects the file at the first bad row (demo data is meant to be clean). */
async function readSeedFile(source: SeedFile["source"]): Promise<SeedFile> {
  const bytes = readFileSync(join(import.meta.dirname, "seed-data", source.file));
  const records: SeedRecord[] = [];
  const mapped = new Set(Object.values(COLUMN_MAPPING));
  for await (const row of parseString<Record<string, string>, Record<string, string>>(bytes.toString("utf8"), { headers: true, trim: true })) {
    const rowNumber = records.length + 1;
    const fail = (problem: string): never => { throw new Error(`${source.file}, row ${rowNumber}: ${problem}`); };
    const col = (field: keyof typeof COLUMN_MAPPING) => (row as Record<string, string>)[COLUMN_MAPPING[field]] ?? "";
    const [amount, currency, date] = [col("amount"), col("currency"), col("bookedDate")];
    if (!/^-?\d+\.\d{2}$/.test(amount)) fail(`amount "${amount}" is not a decimal with two places`);
    if (!/^[A-Z]{3}$/.test(currency)) fail(`currency "${currency}" is not an ISO 4217 code`);
    const bookedDate = new Date(`${date}T00:00:00.000Z`); // a calendar date, at UTC midnight
    if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || !bookedDate.toISOString().startsWith(date)) fail(`date "${date}" is not a YYYY-MM-DD date`);
    if (!col("externalId")) fail("id is empty");
    const extras = Object.fromEntries(Object.entries(row as Record<string, string>).filter(([column]) => !mapped.has(column)));
    records.push({
      id: randomUUID(), externalId: col("externalId"), amount, currency, bookedDate, reference: col("reference"),
      description: col("description"), counterparty: col("counterparty"), rowNumber, extras,
    });
  }
  return { source, sha256: createHash("sha256").update(bytes).digest("hex"), sizeBytes: bytes.length, records };
}

interface DemoGroup { left: SeedRecord; right: SeedRecord; outcome: MatchOutcome; amountDelta: string; dateDeltaDays: number }

/**
 * DEMO MATCHER — a stand-in so the seeded job has believable results, NOT the reconciliation engine. A left
 * record pairs with an unpaired right record of the same reference and currency (an equal amount first):
 * equal amounts are MATCHED, different ones AMOUNT_MISMATCH. Everything else stays unmatched.
 */
function demoMatch(left: SeedRecord[], right: SeedRecord[]) {
  const open = new Map<string, SeedRecord[]>();
  for (const r of right) open.set(`${r.reference}|${r.currency}`, [...(open.get(`${r.reference}|${r.currency}`) ?? []), r]);
  const groups: DemoGroup[] = [];
  const unmatchedLeft: SeedRecord[] = [];
  for (const l of left) {
    const candidates = l.reference ? (open.get(`${l.reference}|${l.currency}`) ?? []) : [];
    const index = Math.max(0, candidates.findIndex((r) => r.amount === l.amount));
    const [r] = candidates.splice(index, 1);
    if (!r) { unmatchedLeft.push(l); continue; }
    const delta = cents(l.amount) - cents(r.amount);
    const dateDeltaDays = Math.round((l.bookedDate.getTime() - r.bookedDate.getTime()) / 86_400_000);
    groups.push({ left: l, right: r, outcome: delta === 0n ? "MATCHED" : "AMOUNT_MISMATCH", amountDelta: fromCents(delta), dateDeltaDays });
  }
  const paired = new Set(groups.map((g) => g.right));
  return { groups, unmatchedLeft, unmatchedRight: right.filter((r) => !paired.has(r)) };
}

const findDemoProject = (db: Db) => db.project.findFirst({ where: { name: DEMO_PROJECT }, select: { id: true } });

/** The first admin, as the server would create it at first start: RECON_ADMIN_PASSWORD or a generated one. */
async function prepareAdmin(db: Db, config: ReturnType<typeof loadConfig>) {
  if ((await db.user.count()) > 0) return null;
  const password = config.adminPassword ?? randomBytes(18).toString("base64url");
  if (password.length < MIN_PASSWORD_LENGTH) throw new Error(`RECON_ADMIN_PASSWORD must be at least ${MIN_PASSWORD_LENGTH} characters`);
  return { email: config.adminEmail, password, generated: !config.adminPassword, passwordHash: await hashPassword(password) };
}

/** Writes the whole demo; returns null when another run got there first. Audit rows are appended at the end. */
async function writeDemo(tx: DbTransaction, files: SeedFile[], admin: Awaited<ReturnType<typeof prepareAdmin>>, demoHash: string) {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('recon.seed'))`; // serialises concurrent seeds
  if (await findDemoProject(tx)) return null;
  const audit: Prisma.AuditEventCreateManyInput[] = [];
  const created = (resourceType: string, resourceId: string, projectId: string | null, after: Prisma.InputJsonObject) =>
    audit.push({ userId: null, projectId, action: "seed.create", resourceType, resourceId, after });

  const adminCreated = admin !== null && (await tx.user.count()) === 0;
  if (adminCreated) {
    const user = await tx.user.create({ data: { email: admin.email, name: "Administrator", role: "ADMIN", passwordHash: admin.passwordHash } });
    created("User", user.id, null, { email: user.email, role: user.role });
  }
  const users = {} as Record<(typeof DEMO_USERS)[number]["key"], { id: string; existed: boolean }>;
  for (const { key, email, name, role } of DEMO_USERS) {
    const existing = await tx.user.findUnique({ where: { email }, select: { id: true } });
    const user = existing ?? (await tx.user.create({ data: { email, name, role, passwordHash: demoHash } }));
    if (!existing) created("User", user.id, null, { email, role });
    users[key] = { id: user.id, existed: Boolean(existing) };
  }

  const project = await tx.project.create({
    data: { name: DEMO_PROJECT, description: "October 2026: a bank statement reconciled against the ledger (sample data from npm run seed).", ownerId: users.maria.id },
  });
  created("Project", project.id, project.id, { name: project.name, ownerId: users.maria.id });
  for (const [key, role] of [["sam", "ANALYST"], ["vic", "VIEWER"]] as const) {
    await tx.projectMember.create({ data: { projectId: project.id, userId: users[key].id, role } });
    created("ProjectMember", `${project.id}:${users[key].id}`, project.id, { userId: users[key].id, role });
  }

  const sourceIds: string[] = [];
  for (const { source, sha256, sizeBytes, records } of files) {
    const dataSource = await tx.dataSource.create({ data: { projectId: project.id, name: source.name, kind: source.kind, columnMapping: COLUMN_MAPPING } });
    const upload = await tx.uploadedFile.create({
      data: {
        projectId: project.id, dataSourceId: dataSource.id, uploadedById: users.sam.id, fileName: source.file, sha256,
        sizeBytes, status: "COMPLETED", rowsRead: records.length, rowsIngested: records.length, completedAt: new Date(),
      },
    });
    await tx.record.createMany({
      data: records.map((r) => ({ ...r, projectId: project.id, dataSourceId: dataSource.id, fileId: upload.id })),
    });
    await tx.dataSource.update({ where: { id: dataSource.id }, data: { recordCount: records.length, status: "READY" } });
    created("DataSource", dataSource.id, project.id, { name: source.name, kind: source.kind });
    created("UploadedFile", upload.id, project.id, { fileName: source.file, sha256, rows: records.length });
    sourceIds.push(dataSource.id);
  }

  const [left, right] = files.map((f) => f.records);
  const { groups, unmatchedLeft, unmatchedRight } = demoMatch(left, right);
  const matched = groups.filter((g) => g.outcome === "MATCHED");
  const counts = {
    matchedCount: matched.length, discrepancyCount: groups.length - matched.length,
    unmatchedLeftCount: unmatchedLeft.length, unmatchedRightCount: unmatchedRight.length,
  };
  const finishedAt = new Date();
  const job = await tx.reconciliationJob.create({
    data: {
      projectId: project.id, leftSourceId: sourceIds[0], rightSourceId: sourceIds[1], createdById: users.sam.id,
      rules: { matcher: "seed-demo", keys: ["reference", "currency"], amountTolerance: "0.00" },
      status: "COMPLETED", phase: "done", progress: 1, ...counts,
      summary: { ...counts, leftRecords: left.length, rightRecords: right.length, note: "computed by the seed's demo matcher" },
      createdAt: new Date(finishedAt.getTime() - 5_000), startedAt: new Date(finishedAt.getTime() - 4_000), finishedAt,
    },
  });
  // Ids numbered as a job's engine numbers its groups: after the range of its pushed pairs, as exports expect
  // (group-scan.ts).
  const nextGroupId = groupIdFactory(job.id);
  await tx.matchGroup.createMany({
    data: groups.map((g) => ({
      id: nextGroupId(), jobId: job.id, projectId: project.id, leftRecordIds: [g.left.id], rightRecordIds: [g.right.id], kind: "ONE_TO_ONE" as const,
      outcome: g.outcome, confidence: g.outcome === "MATCHED" ? "1" : "0.5", rule: "demo: reference + currency + amount",
      amountDelta: g.amountDelta, dateDeltaDays: g.dateDeltaDays,
      // The API's FieldScore list (models.ts), as a job stores it: an object here failed every read of it.
      scoreBreakdown: [
        { comparator: "reference:exact", similarity: 1, weight: 1, passed: true, detail: "same reference" },
        { comparator: "currency:equal", similarity: 1, weight: 1, passed: true, detail: "same currency" },
        { comparator: "amount:exact", similarity: g.outcome === "MATCHED" ? 1 : 0, weight: 1, passed: g.outcome === "MATCHED", detail: g.outcome === "MATCHED" ? "same amount" : `delta ${g.amountDelta}` },
      ],
    })),
  });
  // Only exact matches count as matched; discrepancies stay UNMATCHED (the default) until someone resolves them.
  await tx.record.updateMany({ where: { id: { in: matched.flatMap((g) => [g.left.id, g.right.id]) } }, data: { status: "MATCHED" } });
  created("ReconciliationJob", job.id, project.id, { status: job.status, ...counts });
  await tx.auditEvent.createMany({ data: audit });
  return { adminCreated, users, counts };
}

const config = loadConfig();
const server = await resolveDatabaseUrl(config);
let database: Database | undefined;
try {
  const applied = await applyMigrations(server.url);
  if (applied.length) console.log(`Applied ${applied.length} migration(s): ${applied.join(", ")}`);
  database = createDatabase({ url: server.url, poolSize: 2, metrics: createMetrics() });
  const { prisma } = database;
  if (await findDemoProject(prisma)) {
    console.log(`Already seeded: the project "${DEMO_PROJECT}" exists; nothing changed.`);
  } else {
    const files = await Promise.all(SOURCES.map(readSeedFile));
    const admin = await prepareAdmin(prisma, config);
    const demoHash = await hashPassword(DEMO_PASSWORD);
    const result = await prisma.$transaction((tx) => writeDemo(tx, files, admin, demoHash), { timeout: 60_000 });
    if (!result) {
      console.log(`Already seeded: the project "${DEMO_PROJECT}" exists; nothing changed.`);
    } else {
      const { counts } = result;
      console.log(`Seeded the project "${DEMO_PROJECT}":`);
      for (const f of files) console.log(`  ${f.source.name.padEnd(15)} ${f.records.length} records from ${f.source.file}`);
      console.log(`  Finished job    ${counts.matchedCount} matched, ${counts.discrepancyCount} amount mismatches, ` +
        `${counts.unmatchedLeftCount} bank-only and ${counts.unmatchedRightCount} ledger-only records`);
      console.log(`\nDemo users (password "${DEMO_PASSWORD}"):`);
      for (const { key, email, role } of DEMO_USERS) {
        const note = result.users[key].existed ? "  (existed already; password unchanged)" : "";
        console.log(`  ${email.padEnd(18)} ${role.padEnd(8)} ${key === "maria" ? "owner" : "member"}${note}`);
      }
      if (result.adminCreated && admin) {
        // Like the server's first start: a generated password is printed this once and never again.
        const password = admin.generated ? `${admin.password}  (shown once; set RECON_ADMIN_PASSWORD to choose it)` : "from RECON_ADMIN_PASSWORD";
        console.log(`\nFirst admin: ${admin.email}\n  Password:  ${password}`);
      }
    }
  }
} finally {
  await database?.close();
  await server.stop();
}

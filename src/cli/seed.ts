/**
 * `npm run seed`: loads a small demo so that GraphiQL shows real data at once. It creates the first admin (when
 * there is no user yet, by the same rule as the server's first start), three demo users, the project
 * "Demo: Bank vs Ledger" with a bank statement and a ledger ingested from `seed-data/*.csv`, and one finished
 * reconciliation job with its match groups, exceptions and summary.
 *
 * It is a fixture loader, not a feature: there is no viewer to authorize, so it writes through Prisma in one
 * transaction instead of going through the services. The job is the exception: it is queued in that transaction
 * and then run, here, by the reconciliation task a worker runs (reconcile-task.ts), so the demo's results are what
 * any job stores. It is idempotent: when the demo project exists it says so and changes nothing (but runs its job
 * if an earlier seed stopped before it could).
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseString } from "fast-csv";
import { hashPassword, MIN_PASSWORD_LENGTH } from "../auth/passwords.js";
import { loadConfig } from "../config.js";
import { createDatabase, type Database, type Db, type DbTransaction } from "../db/database.js";
import { resolveDatabaseUrl } from "../db/database-server.js";
import { applyMigrations } from "../db/schema-engine.js";
import type { Prisma } from "../generated/prisma/client.js";
import type { DataSourceKind, Role } from "../generated/prisma/enums.js";
import { createReconcileTask } from "../modules/jobs/reconcile-task.js";
import { createLogger } from "../observability/logger.js";
import { createMetrics, type Metrics } from "../observability/metrics.js";
import { createJobEvents } from "../queue/job-events.js";
import { DEFAULT_RULE_SET } from "../reconcile/rules.js";

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

/** One CSV row, checked and ready to insert. */
interface SeedRecord {
  externalId: string; amount: string; currency: string; bookedDate: Date;
  reference: string; description: string; counterparty: string; rowNumber: number; extras: Record<string, string>;
}
interface SeedFile { source: (typeof SOURCES)[number]; sha256: string; sizeBytes: number; records: SeedRecord[] }

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
      externalId: col("externalId"), amount, currency, bookedDate, reference: col("reference"),
      description: col("description"), counterparty: col("counterparty"), rowNumber, extras,
    });
  }
  return { source, sha256: createHash("sha256").update(bytes).digest("hex"), sizeBytes: bytes.length, records };
}

const findDemoProject = (db: Db) => db.project.findFirst({ where: { name: DEMO_PROJECT }, select: { id: true } });

/** The first admin, as the server would create it at first start: RECON_ADMIN_PASSWORD or a generated one. */
async function prepareAdmin(db: Db, config: ReturnType<typeof loadConfig>) {
  if ((await db.user.count()) > 0) return null;
  const password = config.adminPassword ?? randomBytes(18).toString("base64url");
  if (password.length < MIN_PASSWORD_LENGTH) throw new Error(`RECON_ADMIN_PASSWORD must be at least ${MIN_PASSWORD_LENGTH} characters`);
  return { email: config.adminEmail, password, generated: !config.adminPassword, passwordHash: await hashPassword(password) };
}

/**
 * Writes the whole demo, its job QUEUED; returns null when another run got there first. Audit rows are appended at
 * the end.
 */
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

  // The job as startReconciliation records it with the default rules; runDemoJob runs it once this commits.
  const job = await tx.reconciliationJob.create({
    data: { projectId: project.id, leftSourceId: sourceIds[0]!, rightSourceId: sourceIds[1]!, createdById: users.sam.id, rules: DEFAULT_RULE_SET },
  });
  created("ReconciliationJob", job.id, project.id, { leftSourceId: job.leftSourceId, rightSourceId: job.rightSourceId, dryRun: false });
  await tx.auditEvent.createMany({ data: audit });
  return { adminCreated, users, jobId: job.id };
}

/**
 * Runs a QUEUED job here and now with the reconciliation task a worker runs (the engine, then its groups, exceptions
 * and summary, committed with its COMPLETED status); a job no longer QUEUED is left as it is. Returns the job after.
 */
async function runDemoJob(deps: { database: Database; url: string; metrics: Metrics; blockRecords: number }, jobId: string) {
  const { database, url, metrics, blockRecords } = deps;
  // Warnings and errors only: the job's progress lines would drown what the seed prints.
  const logger = createLogger("warn");
  const events = createJobEvents({ url, logger });
  try {
    const task = createReconcileTask({ pool: database.pool, changes: database.changes, events, metrics, logger, blockRecords });
    await task.perform({ jobId });
  } finally {
    await events.close();
  }
  return database.prisma.reconciliationJob.findUniqueOrThrow({ where: { id: jobId } });
}

const config = loadConfig();
const server = await resolveDatabaseUrl(config);
const metrics = createMetrics();
let database: Database | undefined;
try {
  const applied = await applyMigrations(server.url);
  if (applied.length) console.log(`Applied ${applied.length} migration(s): ${applied.join(", ")}`);
  // As many connections as one job worker uses (the job's writer, its two record streams, its progress writes).
  database = createDatabase({ url: server.url, poolSize: 4, metrics });
  const { prisma } = database;
  const jobRunner = { database, url: server.url, metrics, blockRecords: config.jobs.blockRecords };
  const seeded = await findDemoProject(prisma);
  const queued = seeded && (await prisma.reconciliationJob.findFirst({ where: { projectId: seeded.id, status: "QUEUED" }, select: { id: true } }));
  if (queued) {
    const job = await runDemoJob(jobRunner, queued.id);
    console.log(`Already seeded: the project "${DEMO_PROJECT}" exists; ran its job, which an earlier seed had left queued (${job.status}).`);
  } else if (seeded) {
    console.log(`Already seeded: the project "${DEMO_PROJECT}" exists; nothing changed.`);
  } else {
    const files = await Promise.all(SOURCES.map(readSeedFile));
    const admin = await prepareAdmin(prisma, config);
    const demoHash = await hashPassword(DEMO_PASSWORD);
    const result = await prisma.$transaction((tx) => writeDemo(tx, files, admin, demoHash), { timeout: 60_000 });
    if (!result) {
      console.log(`Already seeded: the project "${DEMO_PROJECT}" exists; nothing changed.`);
    } else {
      const job = await runDemoJob(jobRunner, result.jobId);
      if (job.status !== "COMPLETED") throw new Error(`the demo's reconciliation job is ${job.status}: ${job.error ?? "see the log above"}`);
      console.log(`Seeded the project "${DEMO_PROJECT}":`);
      for (const f of files) console.log(`  ${f.source.name.padEnd(15)} ${f.records.length} records from ${f.source.file}`);
      console.log(`  Finished job    ${job.matchedCount} matched, ${job.suggestedCount} suggested, ${job.discrepancyCount} discrepancies, ` +
        `${job.unmatchedLeftCount} bank-only and ${job.unmatchedRightCount} ledger-only records`);
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

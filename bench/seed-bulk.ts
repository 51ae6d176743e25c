/**
 * Bulk data for benchmarks and index tests: fills an already-migrated database with thousands of users, projects,
 * memberships, data sources and reconciliation jobs in a few set-based statements (INSERT … SELECT FROM
 * generate_series, no ORM), then ANALYZEs so the planner sees realistic statistics.
 *
 * Deterministic: every value except the uuids derives from the row's series number `n` (no random()), so row
 * counts and distributions are identical from run to run. Shape with the default sizes: users 1% ADMIN,
 * 10% MANAGER, 10% VIEWER, the rest ANALYST, 5% deactivated; each user owns 5 projects; every project has
 * 2 members (never its owner) and 4 data sources; older projects have more jobs (from 4 up to about 700).
 * Existing rows (e.g. the first admin) are left alone: bulk emails are `userNNNNN@bulk.recon.local`.
 */
import type pg from "pg";

export interface BulkSizes {
  users: number;
  projects: number;
  jobs: number;
  /** Spread round-robin over projects; a project needs one to get jobs (jobs of projects without one are skipped). */
  dataSources: number;
}

/** Rows inserted per table. */
export interface BulkCounts extends BulkSizes {
  projectMembers: number;
}

const MEMBERS_PER_PROJECT = 2;

/** Fills the database reached through `pool` and returns how many rows each table received. */
export async function seedBulk(
  pool: pg.Pool,
  sizes: BulkSizes = { users: 1000, projects: 5000, jobs: 50000, dataSources: 20000 },
): Promise<BulkCounts> {
  const { users, projects, jobs, dataSources } = sizes;
  const client = await pool.connect();
  const run = async (text: string, values: unknown[] = []) => (await client.query(text, values)).rowCount ?? 0;
  try {
    await client.query("BEGIN");
    // Every reference below is made by joining rows inserted in this transaction, so the foreign-key triggers can
    // only agree; a superuser skips them (two thirds of the time: each check locks the referenced row).
    const { rows } = await client.query<{ superuser: boolean }>("SELECT current_setting('is_superuser') = 'on' AS superuser");
    if (rows[0].superuser) await client.query("SET LOCAL session_replication_role = replica");
    // Series number → uuid maps, so later tables can reference rows by number; dropped at commit.
    await run(`CREATE TEMP TABLE seed_users ON COMMIT DROP AS
      SELECT n, gen_random_uuid() AS id FROM generate_series(1, $1::int) n`, [users]);
    await run(`CREATE TEMP TABLE seed_projects ON COMMIT DROP AS
      SELECT n, gen_random_uuid() AS id, 1 + ((n - 1) * 37) % $2::int AS owner_n,
             now() - n * interval '37 minutes' - (n * 7919 % 3600) * interval '1 second' AS created_at
      FROM generate_series(1, $1::int) n`, [projects, users]);
    // Source k of project p: sources are dealt round-robin, so (project_n, k) is unique.
    await run(`CREATE TEMP TABLE seed_sources ON COMMIT DROP AS
      SELECT 1 + (n - 1) % $2::int AS project_n, 1 + (n - 1) / $2::int AS k, gen_random_uuid() AS id
      FROM generate_series(1, $1::int) n`, [dataSources, projects]);
    await client.query("ANALYZE seed_users, seed_projects, seed_sources"); // temp tables get no autovacuum statistics

    const userRows = await run(`INSERT INTO users (id, email, name, role, is_active, password_hash, created_at, updated_at)
      SELECT id, format('user%s@bulk.recon.local', lpad(n::text, 5, '0')), format('Bulk User %s', n),
             (CASE WHEN n % 100 = 0 THEN 'ADMIN' WHEN n % 10 = 1 THEN 'MANAGER' WHEN n % 10 = 2 THEN 'VIEWER'
                   ELSE 'ANALYST' END)::"Role",
             n % 19 <> 0, 'bulk-seed: cannot sign in', now() - n * interval '1 hour', now()
      FROM seed_users`);

    const projectRows = await run(`INSERT INTO projects (id, name, status, is_active, owner_id, created_at, updated_at)
      SELECT p.id,
             format('%s %s %s', (ARRAY['Bank', 'Ledger', 'Stripe', 'Adyen', 'Payroll', 'Treasury', 'Card', 'Vendor'])[1 + p.n % 8],
                    (ARRAY['EU', 'US', 'UK', 'APAC', 'LATAM'])[1 + p.n % 5], p.n),
             (CASE WHEN p.n % 10 = 0 THEN 'ARCHIVED' ELSE 'ACTIVE' END)::"ProjectStatus", p.n % 10 <> 0,
             u.id, p.created_at, p.created_at
      FROM seed_projects p JOIN seed_users u ON u.n = p.owner_n`);

    const memberRows = await run(`INSERT INTO project_members (project_id, user_id, role, created_at)
      SELECT p.id, u.id, (CASE WHEN k = 1 THEN 'ANALYST' WHEN p.n % 2 = 0 THEN 'VIEWER' ELSE 'MANAGER' END)::"ProjectRole",
             p.created_at + k * interval '1 hour'
      FROM seed_projects p CROSS JOIN generate_series(1, $1::int) k
      JOIN seed_users u ON u.n = 1 + (p.owner_n - 1 + k * 101) % $2::int
      WHERE u.n <> p.owner_n
      ON CONFLICT DO NOTHING`, [MEMBERS_PER_PROJECT, users]);

    const sourceRows = await run(`INSERT INTO data_sources (id, project_id, name, kind, status, record_count, created_at, updated_at)
      SELECT s.id, p.id, format('Source %s', s.k),
             (ARRAY['BANK_STATEMENT', 'LEDGER', 'PSP_REPORT', 'OTHER'])[1 + (s.k - 1) % 4]::"DataSourceKind",
             (CASE (s.project_n + s.k) % 10 WHEN 0 THEN 'FAILED' WHEN 1 THEN 'EMPTY' ELSE 'READY' END)::"DataSourceStatus",
             CASE (s.project_n + s.k) % 10 WHEN 1 THEN 0 ELSE (s.project_n * 31 + s.k * 17) % 5000 END,
             p.created_at + s.k * interval '1 day', now()
      FROM seed_sources s JOIN seed_projects p ON p.n = s.project_n`);

    // Job n belongs to project P − ⌊P·frac(nφ)²⌋ (older projects have more history), compares two of its sources, and was
    // created by some user; its status cycles 60% COMPLETED, 10% each FAILED, RUNNING, QUEUED, CANCELLED.
    const jobRows = await run(`WITH counts AS (SELECT project_n, count(*)::int AS sources FROM seed_sources GROUP BY project_n),
      j AS (SELECT n, $2::int - floor($2::int * ((n * 0.6180339887498949) % 1) ^ 2)::int AS project_n,
                   (ARRAY['COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED', 'FAILED', 'RUNNING',
                          'QUEUED', 'CANCELLED'])[1 + n % 10]::"JobStatus" AS status,
                   now() - (n::bigint * 7919 % 525600) * interval '1 minute' AS created_at
            FROM generate_series(1, $1::int) n)
      INSERT INTO reconciliation_jobs (id, project_id, left_source_id, right_source_id, created_by, status, phase, progress,
                                       matched_count, error, created_at, started_at, finished_at)
      SELECT gen_random_uuid(), p.id, l.id, r.id, u.id, j.status, lower(j.status::text),
             CASE j.status WHEN 'COMPLETED' THEN 1 WHEN 'RUNNING' THEN 0.5 ELSE 0 END,
             CASE j.status WHEN 'COMPLETED' THEN j.n % 1000 ELSE 0 END,
             CASE j.status WHEN 'FAILED' THEN 'bulk seed: simulated failure' END,
             j.created_at,
             CASE WHEN j.status <> 'QUEUED' THEN j.created_at + interval '1 minute' END,
             CASE WHEN j.status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN j.created_at + (2 + j.n % 60) * interval '1 minute' END
      FROM j JOIN counts c USING (project_n) JOIN seed_projects p ON p.n = j.project_n
      JOIN seed_sources l ON l.project_n = j.project_n AND l.k = 1 + j.n % c.sources
      JOIN seed_sources r ON r.project_n = j.project_n AND r.k = 1 + (j.n + 1) % c.sources
      JOIN seed_users u ON u.n = 1 + j.n * 17 % $3::int`, [jobs, projects, users]);

    await client.query("COMMIT");
    await client.query("ANALYZE users, projects, project_members, data_sources, reconciliation_jobs");
    return { users: userRows, projects: projectRows, projectMembers: memberRows, dataSources: sourceRows, jobs: jobRows };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

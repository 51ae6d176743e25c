/**
 * The response cache against the truth, as a game of random steps: two cached instances sharing one database
 * (coherent through Redis, or without it through PostgreSQL) and an uncached third (`RESPONSE_CACHE=off`) whose
 * answers are what every cached answer must equal. Used by response-cache.test.ts (Redis) and
 * cache-coherence-postgres.test.ts (no Redis).
 */
import { ok, type GraphQLResponse, type TestApp, type TestUser } from "./app.js";

/** A small, seeded PRNG (mulberry32): the same seed gives the same sequence of steps. */
export function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] };
}

/** What a client sees of an answer, minus what legitimately differs per execution (statement counts, request ids). */
export function comparable(response: GraphQLResponse) {
  return {
    status: response.status,
    data: response.data ?? null,
    errors: (response.errors ?? []).map((error) => ({ message: error.message, path: error.path, code: error.extensions?.code })),
  };
}

const base = (app: TestApp) => app.url.replace(/\/graphql$/, "");

async function upload(app: TestApp, token: string, dataSourceId: string, csv: string) {
  const response = await fetch(`${base(app)}/data-sources/${dataSourceId}/file?name=step.csv`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "text/csv" },
    body: csv,
  });
  await response.text();
  return response.status;
}

export const QUERIES = {
  projects: `query Projects { projects(first: 50) { totalCount edges { node { id name status owner { id name }
    jobCount dataSourceCount members { user { id name } role } } } } }`,
  users: "query Users { users(first: 50) { totalCount edges { node { id name role isActive projectCount } } } }",
  search: 'query Search { searchProjects(query: "proj", first: 20) { id name status } }',
  me: "query Me { me { id name role } }",
  project: `query Project($id: ID!) { project(id: $id) { id name description status dataSources { id name kind recordCount }
    latestJob { id status phase progress } stats { recordCount unmatchedRecords matchRate } } }`,
  sources: "query Sources($id: ID!) { dataSources(projectId: $id) { id name kind status recordCount } }",
  jobs: "query Jobs($id: ID!) { project(id: $id) { jobCount jobs(first: 5) { edges { node { id phase progress status } } } } }",
  stats: "query Stats($id: ID!) { projectStats(projectId: $id) { recordCount matchRate recordsBySource { recordCount } lastJob { progress } } }",
} as const;

export interface CoherenceFuzzOptions {
  /** The two cached instances. */
  a: TestApp;
  b: TestApp;
  /** The uncached instance on the same database. */
  truth: TestApp;
  seed: number;
  steps: number;
  /** Resolves once each cached instance has applied every invalidation the others made (delivery is an event). */
  settled: () => Promise<void>;
}

/**
 * Plays `steps` random steps — reads on either instance, and one in five a write (projects, members, sources,
 * users, job progress written straight through Prisma as a worker would, uploads) — comparing, after each write,
 * every watched question as several viewers on both instances with the truth. Returns the differences found (it
 * stops at the first step with any) and how many answers it compared.
 */
export async function playCoherenceGame(options: CoherenceFuzzOptions): Promise<{ differences: string[]; compared: number }> {
  const { a, b, truth, seed } = options;
  const rng = random(seed);
  const admin = a.admin;
  const manager = await a.createUser("MANAGER", "Mona Manager");
  const analyst1 = await b.createUser("ANALYST", "Ann Analyst");
  const analyst2 = await a.createUser("ANALYST", "Abe Analyst");
  const reader = await b.createUser("VIEWER", "Vic Viewer");
  const people = [manager, analyst1, analyst2, reader];
  const viewers: TestUser[] = [admin, analyst1, analyst2];
  const instances = [a, b];

  let counter = 0;
  const projects: string[] = [];
  const sources = new Map<string, string[]>();
  const jobs = new Map<string, string[]>();
  async function createProject(app: TestApp, owner: TestUser) {
    counter += 1;
    const created = await app.graphql<{ createProject: { id: string } }>(
      "mutation($n: String!) { createProject(input: { name: $n }) { id } }", { n: `proj ${counter}` }, owner.token);
    if (created.data) {
      projects.push(created.data.createProject.id);
      sources.set(created.data.createProject.id, []);
    }
  }
  async function createSource(app: TestApp, projectId: string) {
    counter += 1;
    const created = await app.graphql<{ createDataSource: { id: string } }>(
      "mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: projectId, n: `src ${counter}` }, admin.token);
    if (created.data) sources.get(projectId)!.push(created.data.createDataSource.id);
  }
  for (const owner of [analyst1, analyst2, manager]) await createProject(a, owner);
  for (const projectId of projects) {
    await createSource(b, projectId);
    await createSource(a, projectId);
  }
  ok(await a.graphql("mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: ANALYST) { id } }", { p: projects[0], u: analyst2.id }, admin.token));
  // The projects whose detail queries are watched (deleting them is part of the game: their answers become null).
  const watched = projects.slice(0, 2);

  type Check = { query: keyof typeof QUERIES; vars: Record<string, unknown> };
  const checks: Check[] = [
    { query: "projects", vars: {} },
    { query: "users", vars: {} },
    { query: "search", vars: {} },
    { query: "me", vars: {} },
    ...watched.flatMap((id) => (["project", "sources", "jobs", "stats"] as const).map((query) => ({ query, vars: { id } }))),
  ];

  let compared = 0;
  const differences: string[] = [];
  /** Compares each instance's answer with the uncached one for the same viewer and question. */
  async function compare(apps: TestApp[], viewer: TestUser, check: Check, step: number) {
    const [fresh, ...cached] = await Promise.all([truth, ...apps].map((app) => app.graphql(QUERIES[check.query], check.vars, viewer.token)));
    cached.forEach((answer, i) => {
      compared += 1;
      if (JSON.stringify(comparable(answer)) !== JSON.stringify(comparable(fresh))) {
        differences.push(`step ${step}: ${check.query} ${JSON.stringify(check.vars)} as ${viewer.email} on ${apps[i] === a ? "A" : "B"} (x-cache ${answer.headers.get("x-cache")})`);
      }
    });
  }
  async function compareAll(step: number) {
    await options.settled();
    await Promise.all(viewers.flatMap((viewer) => checks.map((check) => compare(instances, viewer, check, step))));
  }

  const mutations: ((app: TestApp, step: number) => Promise<unknown>)[] = [
    (app) => createProject(app, rng.pick([analyst1, analyst2, manager, admin])),
    (app) => app.graphql("mutation($id: ID!, $n: String!) { updateProject(id: $id, input: { name: $n }) { id } }", { id: rng.pick(projects), n: `proj renamed ${++counter}` }, admin.token),
    (app) => app.graphql("mutation($id: ID!) { archiveProject(id: $id) { id } }", { id: rng.pick(projects) }, admin.token),
    (app) => (rng.next() < 0.3 ? app.graphql("mutation($id: ID!) { deleteProject(id: $id) }", { id: rng.pick(projects) }, admin.token) : Promise.resolve()),
    (app) => app.graphql("mutation($p: ID!, $u: ID!, $r: ProjectRole!) { addProjectMember(projectId: $p, userId: $u, role: $r) { id } }",
      { p: rng.pick(projects), u: rng.pick(people).id, r: rng.pick(["MANAGER", "ANALYST", "VIEWER"]) }, admin.token),
    (app) => app.graphql("mutation($p: ID!, $u: ID!) { removeProjectMember(projectId: $p, userId: $u) { id } }", { p: rng.pick(projects), u: rng.pick(people).id }, admin.token),
    (app) => createSource(app, rng.pick(projects)),
    (app) => {
      const all = [...sources.values()].flat();
      return all.length ? app.graphql("mutation($id: ID!, $k: DataSourceKind!) { updateDataSource(id: $id, input: { kind: $k }) { id } }", { id: rng.pick(all), k: rng.pick(["BANK_STATEMENT", "LEDGER", "OTHER"]) }, admin.token) : Promise.resolve();
    },
    (app) => app.graphql("mutation($id: ID!, $n: String!) { updateUser(id: $id, input: { name: $n }) { id } }", { id: rng.pick(people).id, n: `Person ${++counter}` }, admin.token),
    (app) => app.graphql("mutation($e: String!) { createUser(input: { email: $e, name: \"New\", password: \"long-enough-password\" }) { id } }", { e: `u${++counter}@x.test` }, admin.token),
    // Job progress written outside GraphQL, as a worker would: straight through Prisma on one instance.
    async (app) => {
      const projectId = rng.pick(projects);
      const own = sources.get(projectId) ?? [];
      const prisma = app.app.container.database.prisma;
      const existing = jobs.get(projectId) ?? [];
      if (existing.length && rng.next() < 0.7) {
        await prisma.reconciliationJob.updateMany({ where: { id: rng.pick(existing) }, data: { progress: rng.next(), phase: rng.pick(["block", "score", "assign"]), status: "RUNNING" } });
      } else if (own.length >= 2 && (await prisma.project.count({ where: { id: projectId } }))) {
        const job = await prisma.reconciliationJob.create({ data: { projectId, leftSourceId: own[0], rightSourceId: own[1], createdById: admin.id } }).catch(() => null);
        if (job) jobs.set(projectId, [...existing, job.id]);
      }
    },
    // Ingest adding records (counts, statistics) through the streaming upload route.
    async (app, step) => {
      const all = [...sources.values()].flat();
      if (!all.length) return;
      counter += 1;
      const csv = `id,amount,currency,date,reference,description\nS${step}-${counter}-1,10.50,EUR,2026-01-02,r,d\nS${step}-${counter}-2,-3.25,EUR,2026-01-03,r,d\n`;
      await upload(app, admin.token, rng.pick(all), csv);
    },
  ];

  await compareAll(0);
  const STEPS = options.steps;
  for (let step = 1; step <= STEPS; step++) {
    const app = rng.pick(instances);
    if (rng.next() < 0.2) {
      await rng.pick(mutations)(app, step);
      await compareAll(step);
    } else {
      await options.settled();
      await compare([app], rng.pick(viewers), rng.pick(checks), step);
    }
    if (differences.length) break;
  }
  return { differences, compared };
}

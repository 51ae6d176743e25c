/**
 * The response cache's tag vocabulary: every cached answer carries the tags of what it read, and every write
 * names the tags of what it changed; a write invalidates every answer sharing one of its tags.
 *
 * Reads register their tags where they happen (the repositories, through `readTags`), writes where they are
 * committed (db/change-feed.ts: a Prisma query extension for ORM writes, explicit calls for raw SQL). Neither side
 * trusts what a client selected, so a background writer or a list that an item joins invalidates exactly as a
 * mutation does. The rule that keeps the two sides in step: a write names the tag of every read whose answer it
 * can change, including lists and counts of its parent.
 */
import { currentRequestScope } from "../observability/request-scope.js";

export const tags = {
  /** One user's row (name, role, status...). */
  user: (id: string) => `User:${id}`,
  /** Any list of users: who a viewer may see depends on project memberships. */
  userList: "List:User",
  /** One project's row and its membership (visibility follows membership). */
  project: (id: string) => `Project:${id}`,
  /** Any list, search or count of projects. */
  projectList: "List:Project",
  /** A project's jobs: lists, counts, the latest job. */
  projectJobs: (id: string) => `Project:${id}:jobs`,
  /** A project's saved rule sets. */
  projectRuleSets: (id: string) => `Project:${id}:ruleSets`,
  /** A project's data sources: lists and counts. */
  projectDataSources: (id: string) => `Project:${id}:dataSources`,
  /** A project's records: status counts and statistics. */
  projectRecords: (id: string) => `Project:${id}:records`,
  /** A project's reconciliation statistics (jobs' results, exceptions): invalidated by every job event of it. */
  projectStats: (id: string) => `Project:${id}:stats`,
  /** A project's reconciliation schedule (automatic runs). */
  projectSchedule: (id: string) => `Project:${id}:schedule`,
  /** One data source's row (its mapping, status, record count). */
  dataSource: (id: string) => `DataSource:${id}`,
  /** A data source's uploads. */
  dataSourceUploads: (id: string) => `DataSource:${id}:uploads`,
  /** One upload's row, progress and row issues. */
  upload: (id: string) => `FileUpload:${id}`,
  /** One job's row, progress and results (its match groups are written with its completion). */
  job: (id: string) => `Job:${id}`,
  /** The audit log. */
  auditLog: "List:AuditEvent",
  /** A project's exceptions: lists and counts (a job's completion, which adds some, announces `projectJobs`). */
  projectExceptions: (id: string) => `Project:${id}:exceptions`,
  /** One exception's row and its comments. */
  exception: (id: string) => `Exception:${id}`,
} as const;

/** TTL classes (the old platform's six cached handlers), in seconds; configurable (`RESPONSE_CACHE_TTLS`). */
export interface CacheTtls {
  projectList: number;
  project: number;
  jobs: number;
  dataSources: number;
  stats: number;
  users: number;
  /** Everything else (uploads, audit log). */
  default: number;
}

export const DEFAULT_TTLS: CacheTtls = {
  projectList: 300,
  project: 600,
  jobs: 120,
  dataSources: 300,
  stats: 1800,
  users: 600,
  default: 300,
};

/** The TTL class of a tag. */
export function ttlClass(tag: string): keyof CacheTtls {
  if (tag === tags.projectList) return "projectList";
  if (tag === tags.userList || tag.startsWith("User:")) return "users";
  if (tag.startsWith("Project:")) {
    if (tag.endsWith(":jobs")) return "jobs";
    if (tag.endsWith(":dataSources")) return "dataSources";
    if (tag.endsWith(":records") || tag.endsWith(":stats")) return "stats";
    if (tag.endsWith(":exceptions")) return "jobs";
    return "project";
  }
  if (tag.startsWith("Job:") || tag.startsWith("Exception:")) return "jobs";
  if (tag.startsWith("DataSource:") && !tag.endsWith(":uploads")) return "dataSources";
  return "default";
}

/** An answer lives as long as the shortest TTL among what it read. */
export function ttlFor(readTags: Iterable<string>, ttls: CacheTtls): number {
  let ttl = Infinity;
  for (const tag of readTags) ttl = Math.min(ttl, ttls[ttlClass(tag)]);
  return Number.isFinite(ttl) ? ttl : ttls.default;
}

/** Parses `RESPONSE_CACHE_TTLS` ("project=600,jobs=60"): the classes named are overridden. */
export function parseTtls(text: string | undefined): CacheTtls {
  const ttls = { ...DEFAULT_TTLS };
  if (!text) return ttls;
  for (const part of text.split(",")) {
    const [name, value] = part.split("=").map((s) => s.trim());
    if (!(name in ttls)) {
      throw new Error(`RESPONSE_CACHE_TTLS: unknown class "${name}" (known: ${Object.keys(ttls).join(", ")})`);
    }
    const seconds = Number(value);
    if (!Number.isInteger(seconds) || seconds < 1) throw new Error(`RESPONSE_CACHE_TTLS: ${name} must be a whole number of seconds >= 1`);
    ttls[name as keyof CacheTtls] = seconds;
  }
  return ttls;
}

/**
 * Registers tags read by the code running now, for the answer of the request it belongs to (if that answer may
 * be cached; otherwise this is a no-op). Called by the repositories next to each read.
 */
export function readTags(...read: string[]): void {
  const set = currentRequestScope()?.cacheReads;
  if (set) for (const tag of read) set.add(tag);
}

/** Registers one tag per id. */
export function readTagsOf(tag: (id: string) => string, ids: readonly string[]): void {
  const set = currentRequestScope()?.cacheReads;
  if (set) for (const id of ids) set.add(tag(id));
}

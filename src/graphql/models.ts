/**
 * What resolvers pass around for each GraphQL object type (codegen "mappers"): mostly the Prisma rows, so that
 * field resolvers (owner, counts, stats) can load what the row does not hold through the request's DataLoaders.
 */
import type {
  UploadedFile as UploadedFileRow,
  UploadRowIssue as RowIssueRow,
  AuditEvent as AuditEventRow,
  DataSource as DataSourceRow,
  Project as ProjectRow,
  ReconciliationJob as JobRow,
  User as UserRow,
} from "../generated/prisma/client.js";
import type { Connection } from "./pagination.js";
import type { Outcome } from "../reconcile/types.js";

/** A user as resolvers see it: never with its password hash. */
export type User = Omit<UserRow, "passwordHash">;
export type Project = ProjectRow;
export type DataSource = DataSourceRow;
export type ReconciliationJob = JobRow;
export type AuditEvent = AuditEventRow;

/** A membership row; the member is loaded by id. */
export interface ProjectMember {
  projectId: string;
  userId: string;
  role: "MANAGER" | "ANALYST" | "VIEWER";
  createdAt: Date;
}

/** Stats are computed from loaders when their fields are asked for; the model is just the project. */
export interface ProjectStats {
  projectId: string;
}

/** A point of the auto-match rate's history (one completed job). */
export type { RatePoint as AutoMatchRatePoint } from "../modules/stats/stats-repository.js";
/** A project's reconciliation schedule (Prisma row). */
export type { ReconciliationSchedule } from "../generated/prisma/client.js";

export interface SourceRecordCount {
  dataSource: DataSourceRow;
  recordCount: number;
}

/** An uploaded file's row; byte counts are BigInt there and Float in GraphQL. */
export type FileUpload = UploadedFileRow;
export type RowIssue = Pick<RowIssueRow, "line" | "column" | "reason" | "severity">;

export type FileUploadConnection = Connection<UploadedFileRow>;
export type RowIssueConnection = Connection<RowIssue & { id: bigint }>;
export type UserConnection = Connection<User>;
export type ProjectConnection = Connection<ProjectRow>;
export type ReconciliationJobConnection = Connection<JobRow>;
export type AuditEventConnection = Connection<AuditEventRow>;

/** A saved rule-set version (Prisma row). */
export type { RuleSet } from "../generated/prisma/client.js";

/** A match group as read for the API (amounts as exact decimal strings). */
export interface MatchGroup {
  id: string;
  jobId: string;
  projectId: string;
  leftRecordIds: string[];
  rightRecordIds: string[];
  kind: "ONE_TO_ONE" | "ONE_TO_MANY" | "MANY_TO_ONE" | "MANY_TO_MANY" | "SINGLE";
  outcome: MatchOutcomeName;
  status: "PROPOSED" | "CONFIRMED" | "REJECTED";
  confidence: string;
  ambiguous: boolean;
  rule: string;
  pass: number;
  amountDelta: string;
  dateDeltaDays: number;
  duplicateOf: string | null;
  /** Null when every comparator of the pass held exactly (the resolver derives the breakdown from the job's rules). */
  scoreBreakdown: { comparator: string; similarity: number; weight: number; passed: boolean; detail: string }[] | null;
}

/** The engine's outcomes are the API's (the MatchOutcome enum of schema.graphql). */
export type MatchOutcomeName = Outcome;

/** A record as the API shows it (dates 'YYYY-MM-DD', amount an exact decimal string). */
export interface SourceRecord {
  id: string;
  projectId: string;
  dataSourceId: string;
  externalId: string;
  amount: string;
  currency: string;
  bookedDate: string;
  valueDate: string | null;
  reference: string;
  description: string;
  counterparty: string;
  rowNumber: number;
}

export type MatchGroupConnection = Connection<MatchGroup>;

/** An exception, a comment on one, and what manual work returns (modules/exceptions/). */
export type { ExceptionRow as Exception, ExceptionComment } from "../modules/exceptions/exception-repository.js";
export type { MatchWorkResult } from "../modules/exceptions/match-work-service.js";
export type ExceptionConnection = Connection<import("../modules/exceptions/exception-repository.js").ExceptionRow>;

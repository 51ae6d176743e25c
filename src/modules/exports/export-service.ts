/**
 * Exports of a job's results. Responsible for authorization — the same as reading the job's results (seeing its
 * project), checked when a download link is asked for and again when it is used, for the viewer the link was
 * issued to as they are then (deactivated, or no longer a member: refused) — for input checks, and for how many
 * exports this instance streams at once (each holds a database connection for as long as its client reads).
 * Talks to the job repository (the job row), the project service (visibility), the export repository (rows) and
 * the signed links.
 */
import { GraphQLError } from "graphql";
import { requireViewer, type Viewer } from "../../auth/policy.js";
import type { ExportClaims, ExportLinks } from "../../auth/export-links.js";
import { BadUserInputError, ForbiddenError, NotFoundError } from "../../graphql/errors.js";
import type { MatchOutcomeName, ReconciliationJob } from "../../graphql/models.js";
import { isId, requireId } from "../../graphql/validate.js";
import type { JobRepository } from "../jobs/job-repository.js";
import { OUTCOME_ORDER } from "../jobs/group-scan.js";
import type { ProjectService } from "../projects/project-service.js";
import type { ExportRepository, ExportRows } from "./export-repository.js";

/** The outcome filters of an export (schema.graphql's ExportOutcome) and the group outcomes each takes. */
export const EXPORT_OUTCOMES: Record<string, readonly MatchOutcomeName[]> = {
  ALL: OUTCOME_ORDER,
  MATCHED: ["MATCHED"],
  SUGGESTED: ["SUGGESTED"],
  DISCREPANCIES: ["AMOUNT_MISMATCH", "DATE_LAG", "REFERENCE_MISMATCH", "CURRENCY_MISMATCH", "DUPLICATE"],
  UNMATCHED: ["UNMATCHED_LEFT", "UNMATCHED_RIGHT"],
};

export const EXPORT_FORMATS = ["CSV"] as const;

/** An export ready to stream: the file's name and its rows (close them when done, also after an error). */
export interface OpenExport extends ExportRows {
  fileName: string;
}

function requireOutcome(value: string, field: string): readonly MatchOutcomeName[] {
  const outcomes = EXPORT_OUTCOMES[value];
  if (!outcomes) throw new BadUserInputError(field, `must be one of ${Object.keys(EXPORT_OUTCOMES).join(", ")}`);
  return outcomes;
}

/** A job whose results exist: COMPLETED, and not a dry run (which keeps its summary only). */
function requireResults(job: ReconciliationJob, field: string): void {
  if (job.status !== "COMPLETED") throw new BadUserInputError(field, `the job has no results to export (it is ${job.status})`);
  if (job.dryRun) throw new BadUserInputError(field, "the job was a dry run: it kept only its summary, no groups to export");
}

export function createExportService(deps: {
  jobs: Pick<JobRepository, "findById">;
  projects: Pick<ProjectService, "get">;
  viewers: { viewerById(userId: string): Promise<Viewer | null> };
  exports: ExportRepository;
  links: ExportLinks;
  /** Exports this instance streams at once; more are refused with TOO_MANY_EXPORTS (HTTP 429). */
  maxConcurrent: number;
}) {
  const { jobs, projects, viewers, exports, links, maxConcurrent } = deps;
  let active = 0;

  /** The job if the viewer may read its results (sees its project); null otherwise, as if it did not exist. */
  async function readableJob(viewer: Viewer, jobId: string): Promise<ReconciliationJob | null> {
    const job = await jobs.findById(jobId);
    if (!job) return null;
    return (await projects.get(viewer, job.projectId)) ? job : null;
  }

  return {
    /** A signed download link for the job's results, valid for a few minutes and for this viewer only. */
    async jobResultsLink(viewer: Viewer | null, args: { jobId: string; outcome?: string | null; format?: string | null }) {
      const actor = requireViewer(viewer);
      const jobId = requireId(args.jobId, "jobId");
      const outcome = args.outcome ?? "ALL";
      requireOutcome(outcome, "outcome");
      const format = args.format ?? "CSV";
      if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new BadUserInputError("format", `must be one of ${EXPORT_FORMATS.join(", ")}`);
      const job = await readableJob(actor, jobId);
      if (!job) throw new NotFoundError("ReconciliationJob");
      requireResults(job, "jobId");
      return links.sign({ viewerId: actor.id, jobId, outcome });
    },

    /**
     * Opens the export a verified link names, after checking again that its viewer may read the job now. Throws
     * FORBIDDEN (the viewer is deactivated or gone), NOT_FOUND (no such job, or no longer visible to them),
     * BAD_USER_INPUT, or TOO_MANY_EXPORTS.
     */
    async openJobResults(claims: ExportClaims): Promise<OpenExport> {
      const outcomes = requireOutcome(claims.outcome, "outcome");
      const viewer = isId(claims.viewerId) ? await viewers.viewerById(claims.viewerId.toLowerCase()) : null;
      if (!viewer) throw new ForbiddenError("The user this export link was issued to is deactivated or no longer exists");
      const job = isId(claims.jobId) ? await readableJob(viewer, claims.jobId.toLowerCase()) : null;
      if (!job) throw new NotFoundError("ReconciliationJob");
      requireResults(job, "jobId");
      if (active >= maxConcurrent) {
        throw new GraphQLError(`This instance is already streaming ${maxConcurrent} exports: try again shortly`, {
          extensions: { code: "TOO_MANY_EXPORTS" },
        });
      }
      active += 1;
      try {
        const rows = await exports.jobResults(job.id, outcomes);
        let released = false;
        return {
          fileName: `recon-job-${job.id}-${claims.outcome.toLowerCase()}.csv`,
          rows: rows.rows,
          async close(error?: Error) {
            if (!released) {
              released = true;
              active -= 1;
            }
            await rows.close(error);
          },
        };
      } catch (error) {
        active -= 1;
        throw error;
      }
    },
  };
}

export type ExportService = ReturnType<typeof createExportService>;

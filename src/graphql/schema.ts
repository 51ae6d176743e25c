/** The executable schema: schema.graphql (SDL-first) joined with every module's resolvers. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { makeExecutableSchema } from "@graphql-tools/schema";
import type { GraphQLSchema } from "graphql";
import { auditResolvers } from "../modules/audit/audit-resolvers.js";
import { cacheResolvers } from "../modules/cache/cache-resolvers.js";
import { authResolvers } from "../modules/auth/auth-resolvers.js";
import { dataSourceResolvers } from "../modules/data-sources/data-source-resolvers.js";
import { projectResolvers } from "../modules/projects/project-resolvers.js";
import { userResolvers } from "../modules/users/user-resolvers.js";
import { uploadResolvers } from "../modules/uploads/upload-resolvers.js";
import { jobResolvers } from "../modules/jobs/job-resolvers.js";
import { exportResolvers } from "../modules/exports/export-resolvers.js";
import { scheduleResolvers } from "../modules/schedules/schedule-resolvers.js";
import { statsResolvers } from "../modules/stats/stats-resolvers.js";
import { exceptionResolvers } from "../modules/exceptions/exception-resolvers.js";
import { UploadScalar } from "./upload-scalar.js";
import type { Resolvers } from "./resolver-types.js";
import { DateTime, Decimal, JSONScalar } from "./scalars.js";

export const typeDefs = readFileSync(resolve(import.meta.dirname, "../../schema.graphql"), "utf8");

export const resolvers: Resolvers[] = [
  { DateTime, Decimal, JSON: JSONScalar, Upload: UploadScalar },
  authResolvers,
  userResolvers,
  projectResolvers,
  dataSourceResolvers,
  auditResolvers,
  uploadResolvers,
  jobResolvers,
  exportResolvers,
  exceptionResolvers,
  cacheResolvers,
  scheduleResolvers,
  statsResolvers,
];

export function createSchema(extraResolvers: Resolvers[] = []): GraphQLSchema {
  return makeExecutableSchema({ typeDefs, resolvers: [...resolvers, ...extraResolvers] });
}

/**
 * Decides what clients see of an error: errors with a code meant for users (bad input, not found, forbidden,
 * GraphQL syntax and validation errors) pass through; an unreachable or exhausted database is SERVICE_UNAVAILABLE;
 * anything else is a bug, logged in full with the request id and replaced by a message that names that id.
 */
import type { GraphQLFormattedError } from "graphql";
import { unwrapResolverError } from "@apollo/server/errors";
import type { Logger } from "../observability/logger.js";
import { currentRequestScope } from "../observability/request-scope.js";
import { findDatabaseUnavailable, isStatementTimeout } from "../db/errors.js";

const INTERNAL = "INTERNAL_SERVER_ERROR";

export function createErrorFormatter(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const code = formatted.extensions?.code;
    if (code && code !== INTERNAL) {
      const { stacktrace: _, ...extensions } = formatted.extensions ?? {};
      return { ...formatted, extensions };
    }
    const requestId = currentRequestScope()?.requestId;
    const unavailable = findDatabaseUnavailable(unwrapResolverError(error));
    if (unavailable) {
      // Not a bug and nothing wrong with the request: the client should retry.
      logger.warn({ reason: unavailable.reason, requestId }, "database unavailable");
      return { message: unavailable.message, path: formatted.path, locations: formatted.locations, extensions: { code: "SERVICE_UNAVAILABLE", requestId } };
    }
    if (isStatementTimeout(unwrapResolverError(error))) {
      logger.warn({ requestId, path: formatted.path }, "SQL statement timed out");
      return {
        message: "The operation took too long and was stopped; narrow it (fewer rows, a filter) or retry later",
        path: formatted.path,
        locations: formatted.locations,
        extensions: { code: "QUERY_TIMEOUT", requestId },
      };
    }
    logger.error({ err: unwrapResolverError(error), requestId, path: formatted.path }, "unexpected error in GraphQL operation");
    return {
      message: `Internal server error; quote request id ${requestId ?? "unknown"} to an operator`,
      path: formatted.path,
      locations: formatted.locations,
      extensions: { code: INTERNAL, requestId },
    };
  };
}

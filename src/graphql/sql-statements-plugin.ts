/**
 * Apollo plugin that reports how many SQL statements an operation ran: always as the
 * `recon_db_queries_per_operation` metric and, outside production, as `extensions.sqlStatements` in the
 * response, so clients and tests can see N+1 regressions directly. It also times operations
 * (`recon_graphql_operation_duration_seconds`) and logs those slower than `slowOperationMs` with the request id,
 * operation name, SQL count and time — never the variables, which may hold personal data.
 */
import type { ApolloServerPlugin } from "@apollo/server";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { currentRequestScope } from "../observability/request-scope.js";
import type { GraphQLContext } from "./context.js";

export function sqlStatementsPlugin(
  metrics: Pick<Metrics, "sqlStatementsPerOperation" | "graphqlOperationDuration">,
  exposeInResponse: boolean,
  slow?: { ms: number; logger: Pick<Logger, "warn"> },
): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      const started = process.hrtime.bigint();
      return {
        async willSendResponse({ response, operationName, errors }) {
          const scope = currentRequestScope();
          const operation = operationName ?? "anonymous";
          const statements = scope?.sqlStatements ?? 0;
          metrics.sqlStatementsPerOperation.observe({ operation }, statements);
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          metrics.graphqlOperationDuration.observe({ operation, outcome: errors?.length ? "error" : "ok" }, seconds);
          if (slow && seconds * 1000 >= slow.ms) {
            slow.logger.warn(
              { requestId: scope?.requestId, operation, durationMs: Math.round(seconds * 1000), sqlStatements: statements, sqlMs: Math.round(scope?.sqlMs ?? 0), errors: errors?.length ?? 0 },
              "slow GraphQL operation",
            );
          }
          if (exposeInResponse && response.body.kind === "single") {
            response.body.singleResult.extensions = { ...response.body.singleResult.extensions, sqlStatements: statements };
          }
        },
      };
    },
  };
}

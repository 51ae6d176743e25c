/**
 * Apollo plugin that reports how many SQL statements an operation ran: always as the
 * `recon_db_queries_per_operation` metric and, outside production, as `extensions.sqlStatements` in the
 * response, so clients and tests can see N+1 regressions directly.
 */
import type { ApolloServerPlugin } from "@apollo/server";
import type { Metrics } from "../observability/metrics.js";
import { currentRequestScope } from "../observability/request-scope.js";
import type { GraphQLContext } from "./context.js";

export function sqlStatementsPlugin(
  metrics: Pick<Metrics, "sqlStatementsPerOperation" | "graphqlOperationDuration">,
  exposeInResponse: boolean,
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
          metrics.graphqlOperationDuration.observe(
            { operation, outcome: errors?.length ? "error" : "ok" },
            Number(process.hrtime.bigint() - started) / 1e9,
          );
          if (exposeInResponse && response.body.kind === "single") {
            response.body.singleResult.extensions = { ...response.body.singleResult.extensions, sqlStatements: statements };
          }
        },
      };
    },
  };
}

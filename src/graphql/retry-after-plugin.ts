/**
 * Apollo plugin that makes an answer failed by an unavailable database (SERVICE_UNAVAILABLE: PostgreSQL down,
 * restarting or out of connections) look retryable at the HTTP level too: `Retry-After: 1` on it, and status 503
 * when nothing of it succeeded (no data at all). Answers with some data stay 200, as GraphQL over HTTP asks.
 */
import type { ApolloServerPlugin } from "@apollo/server";
import type { GraphQLContext } from "./context.js";

export function retryAfterPlugin(): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ response }) {
          if (response.body.kind !== "single") return;
          const { errors, data } = response.body.singleResult;
          if (!errors?.some((error) => error.extensions?.code === "SERVICE_UNAVAILABLE")) return;
          response.http.headers.set("retry-after", "1");
          if (data === null || data === undefined) response.http.status = 503;
        },
      };
    },
  };
}

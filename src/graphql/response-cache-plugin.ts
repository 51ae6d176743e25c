/**
 * Apollo plugin that tells the HTTP layer whether an answer may be stored in the response cache: only a query
 * (never a mutation or subscription) whose answer carries no errors. What it read is tracked elsewhere (tags
 * registered by the repositories); this only judges the outcome.
 */
import type { ApolloServerPlugin } from "@apollo/server";
import type { GraphQLContext } from "./context.js";

/** Filled in by the plugin, read by the HTTP layer once Apollo has answered. */
export interface CacheNote {
  cacheable: boolean;
  /** Set by a resolver whose answer must never be stored (it changes on every request). */
  noStore?: boolean;
}

export function responseCachePlugin(): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ contextValue, operation, response }) {
          if (!contextValue.cacheNote) return;
          contextValue.cacheNote.cacheable =
            !contextValue.cacheNote.noStore &&
            operation?.operation === "query" && response.body.kind === "single" && !response.body.singleResult.errors?.length;
        },
      };
    },
  };
}

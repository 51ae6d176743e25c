/**
 * GraphQL over WebSocket (the graphql-ws protocol) on the same `/graphql` path as HTTP, for subscriptions such as
 * `jobProgress`. Responsible for authenticating each connection (the bearer token travels as the `authorization`
 * connection parameter, browsers cannot set headers on a WebSocket), for giving every operation a fresh context
 * (viewer, per-operation DataLoaders) as HTTP requests get, and for applying the same operation limits and trusted
 * documents: a manifest operation is sent as its exact text, or with an empty `query` and its hash
 * (`extensions.persistedQuery.sha256Hash` or `documentId`; graphql-ws requires `query` to be a string).
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { GraphQLError, specifiedRules, validate, type GraphQLSchema, type ValidationRule } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";
import type { Viewer } from "../auth/policy.js";
import type { Container } from "../container.js";
import type { GraphQLContext } from "../graphql/context.js";
import { createLoaders } from "../graphql/loaders.js";
import { documentIdToPersistedQuery, type OperationParams } from "../graphql/trusted-documents.js";

/** The token from `{ authorization: "Bearer <token>" }` (or the bare token). */
function tokenOf(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  const value = params?.authorization ?? params?.Authorization;
  if (typeof value !== "string" || !value.trim()) return undefined;
  return value.replace(/^Bearer\s+/i, "").trim();
}

export function attachSubscriptions(options: {
  server: Server;
  schema: GraphQLSchema;
  validationRules: readonly ValidationRule[];
  container: Container;
}): { close(): Promise<void> } {
  const { server, schema, validationRules, container } = options;
  const { services, repos, metrics, logger, trustedDocuments: trusted } = container;
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((req.url ?? "").split("?")[0] !== "/graphql") {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  };
  server.on("upgrade", onUpgrade);

  const viewers = new WeakMap<object, Viewer | null>();
  const disposable = useServer<Record<string, unknown>>(
    {
      schema,
      // graphql-ws passes no rules: the standard ones plus the operation limits HTTP requests get.
      validate: (s, document) => validate(s, document, [...specifiedRules, ...validationRules]),
      async onConnect(ctx) {
        const token = tokenOf(ctx.connectionParams);
        const viewer = token ? await services.auth.viewerFromToken(token) : null;
        // A token that does not verify closes the connection (4403 Forbidden) rather than acting anonymously.
        if (token && !viewer) return false;
        viewers.set(ctx, viewer);
        return true;
      },
      /** Trusted documents, as on HTTP; a manifest operation sent by hash gets its text here. */
      onSubscribe(ctx, _id, payload) {
        const params = documentIdToPersistedQuery(payload as OperationParams & { query: string });
        const hash = (params.extensions as { persistedQuery?: { sha256Hash?: unknown } } | undefined)?.persistedQuery?.sha256Hash;
        const byHash = params.query === undefined || params.query === "";
        const refusal = trusted.refusal(viewers.get(ctx) ?? null, byHash ? { extensions: params.extensions } : params);
        if (refusal) return [new GraphQLError(refusal.message, { extensions: { code: refusal.code } })];
        if (byHash && typeof hash === "string") {
          const text = trusted.manifest.get(hash);
          if (!text) return [new GraphQLError("PersistedQueryNotFound", { extensions: { code: "PERSISTED_QUERY_NOT_FOUND" } })];
          (payload as { query: string }).query = text; // graphql-ws parses the payload it passed here
        }
      },
      context(ctx): GraphQLContext {
        const viewer = viewers.get(ctx) ?? null;
        return { viewer, services, loaders: createLoaders(repos, viewer, metrics), requestId: randomUUID() };
      },
      onError(_ctx, _id, _payload, errors) {
        logger.debug({ errors: errors.map((error) => error.message) }, "subscription operation refused");
      },
    },
    wss,
  );

  return {
    async close() {
      server.off("upgrade", onUpgrade);
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/**
 * GraphQL over WebSocket (the graphql-ws protocol) on the same `/graphql` path as HTTP, for subscriptions such as
 * `jobProgress`. Responsible for authenticating each connection (the bearer token travels as the `authorization`
 * connection parameter, browsers cannot set headers on a WebSocket) and then treating every operation on it as an
 * HTTP request is treated: the viewer resolved afresh from the connection's token (a role change, a deactivation or
 * a new password applies at the socket's next operation, not at its next connection), the same rate limit and
 * sign-in throttling by client address, a fresh context (per-operation DataLoaders), the same operation limits and
 * trusted documents: a manifest operation is sent as its exact text, or with an empty `query` and its hash
 * (`extensions.persistedQuery.sha256Hash` or `documentId`; graphql-ws requires `query` to be a string). A running
 * subscription checks before each event that its viewer is still who they were; if not, the connection closes
 * (4403) and the client signs in again.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { GraphQLError, getOperationAST, specifiedRules, validate, type GraphQLSchema, type ValidationRule } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";
import type { Viewer } from "../auth/policy.js";
import type { Container } from "../container.js";
import type { GraphQLContext } from "../graphql/context.js";
import { createLoaders } from "../graphql/loaders.js";
import { documentIdToPersistedQuery, type OperationParams } from "../graphql/trusted-documents.js";
import { rateKey, rateLimitedMessage, type RateLimiter } from "./rate-limit.js";

/** The token from `{ authorization: "Bearer <token>" }` (or the bare token). */
function tokenOf(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  const value = params?.authorization ?? params?.Authorization;
  if (typeof value !== "string" || !value.trim()) return undefined;
  return value.replace(/^Bearer\s+/i, "").trim();
}

/** graphql-ws's close code for Forbidden: the connection's token no longer signs its user in as they were. */
const FORBIDDEN = 4403;

/** What a connection keeps: its bearer token, the client's address, and the viewer each running operation began as. */
interface Connection {
  token: string | undefined;
  address: string | undefined;
  viewers: Map<string, Viewer | null>;
}

export function attachSubscriptions(options: {
  server: Server;
  schema: GraphQLSchema;
  validationRules: readonly ValidationRule[];
  container: Container;
  /** The HTTP route's rate limiter: a socket's operations count against the same buckets. */
  limiter: RateLimiter;
}): { close(): Promise<void> } {
  const { server, schema, validationRules, container, limiter } = options;
  const { services, repos, metrics, logger, cache, trustedDocuments: trusted } = container;

  /** The viewer of a token as the HTTP route resolves it (remembered by the response cache until the user changes). */
  const viewerOf = (token: string | undefined): Promise<Viewer | null> => {
    const known = cache.knownViewer(token);
    return known !== undefined ? Promise.resolve(known) : cache.viewerFor(token, () => services.auth.viewerFromToken(token));
  };
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((req.url ?? "").split("?")[0] !== "/graphql") {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  };
  server.on("upgrade", onUpgrade);

  const connections = new WeakMap<object, Connection>();
  const disposable = useServer<Record<string, unknown>>(
    {
      schema,
      // graphql-ws passes no rules: the standard ones plus the operation limits HTTP requests get.
      validate: (s, document) => validate(s, document, [...specifiedRules, ...validationRules]),
      async onConnect(ctx) {
        const token = tokenOf(ctx.connectionParams);
        // A token that does not verify closes the connection (4403 Forbidden) rather than acting anonymously.
        if (token && !(await viewerOf(token))) return false;
        connections.set(ctx, { token, address: ctx.extra.request.socket.remoteAddress, viewers: new Map() });
        return true;
      },
      /** Each operation as a request of its own: its viewer now, the rate limit, trusted documents. */
      async onSubscribe(ctx, id, payload) {
        const connection = connections.get(ctx)!;
        const viewer = connection.token ? await viewerOf(connection.token) : null;
        if (connection.token && !viewer) {
          ctx.extra.socket.close(FORBIDDEN, "Forbidden: the token no longer signs anyone in");
          return [new GraphQLError("The token no longer signs anyone in: sign in again", { extensions: { code: "UNAUTHENTICATED" } })];
        }
        const decision = limiter.take(rateKey(viewer?.id, connection.token, connection.address));
        if (!decision.ok) {
          metrics.rateLimitedTotal.inc();
          return [new GraphQLError(rateLimitedMessage(decision.retryAfterSeconds, limiter.perSecond), {
            extensions: { code: "RATE_LIMITED", retryAfterSeconds: decision.retryAfterSeconds },
          })];
        }
        const params = documentIdToPersistedQuery(payload as OperationParams & { query: string });
        const hash = (params.extensions as { persistedQuery?: { sha256Hash?: unknown } } | undefined)?.persistedQuery?.sha256Hash;
        const byHash = params.query === undefined || params.query === "";
        const refusal = trusted.refusal(viewer, byHash ? { extensions: params.extensions } : params);
        if (refusal) return [new GraphQLError(refusal.message, { extensions: { code: refusal.code } })];
        if (byHash && typeof hash === "string") {
          const text = trusted.manifest.get(hash);
          if (!text) return [new GraphQLError("PersistedQueryNotFound", { extensions: { code: "PERSISTED_QUERY_NOT_FOUND" } })];
          (payload as { query: string }).query = text; // graphql-ws parses the payload it passed here
        }
        connection.viewers.set(id, viewer);
      },
      context(ctx, id): GraphQLContext {
        const connection = connections.get(ctx)!;
        const viewer = connection.viewers.get(id) ?? null;
        return {
          viewer,
          services,
          loaders: createLoaders(repos, viewer, metrics),
          requestId: randomUUID(),
          clientAddress: connection.address ?? null,
        };
      },
      /**
       * Before each event of a subscription (it may run for hours): its viewer must still be signed in as the same
       * user with the same role. If not, the connection closes instead of sending the event.
       */
      async onNext(ctx, id, _payload, args) {
        const connection = connections.get(ctx);
        const began = connection?.viewers.get(id);
        if (!connection || !began || getOperationAST(args.document, args.operationName)?.operation !== "subscription") return;
        const now = await viewerOf(connection.token);
        if (now?.id !== began.id || now.role !== began.role) ctx.extra.socket.close(FORBIDDEN, "Forbidden: the user's access changed");
      },
      onComplete(ctx, id) {
        connections.get(ctx)?.viewers.delete(id);
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

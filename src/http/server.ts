/**
 * The HTTP front: a plain node:http server that routes `/graphql` to the GraphQL route (./graphql-route.ts; or,
 * for a browser, to the offline GraphiQL page of ./graphiql.ts, with its assets under `/graphiql/`), file uploads
 * to ./upload-route.ts, export downloads to ./export-route.ts, and serves `/healthz`, `/readyz` and `/metrics`. Responsible for request ids, HTTP
 * metrics, errors as JSON with their status, graceful shutdown, and the hot path of cached answers: a JSON POST to
 * /graphql is handed to the GraphQL route's cache as soon as its body is in, with no promise on the way.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { ApolloServer } from "@apollo/server";
import type { Container } from "../container.js";
import { findDatabaseUnavailable } from "../db/errors.js";
import type { GraphQLContext } from "../graphql/context.js";
import type { Resolvers } from "../graphql/resolver-types.js";
import { runInRequestScope, type RequestScope } from "../observability/request-scope.js";
import { createGraphiqlHandler, GRAPHIQL_ASSET_PREFIX } from "./graphiql.js";
import { createGraphQLRoute } from "./graphql-route.js";
import { MultipartError } from "./multipart.js";
import { bearerToken, HttpError, isJsonMediaType, MAX_BODY_BYTES, requestIdOf } from "./request-utils.js";
import { attachSubscriptions } from "./subscriptions.js";
import { countsInListener, createRateLimiter, rateKey, sendRateLimited } from "./rate-limit.js";
import { createUploadRoute, UPLOAD_ROUTE, UPLOAD_STATUS_ROUTE } from "./upload-route.js";
import { createExportRoute, EXPORT_ROUTE } from "./export-route.js";

export { MAX_BODY_BYTES } from "./request-utils.js";

/** Largest uploaded file when neither the container's limits nor the options say. */
const DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024 ** 3;
/** Longest a request may take to arrive whole: uploads of large files take minutes (node's default is 5). */
const REQUEST_TIMEOUT_MS = 60 * 60 * 1000;
const HTTP_ERROR_CODES: Record<number, string> = {
  401: "UNAUTHENTICATED",
  404: "NOT_FOUND",
  413: "PAYLOAD_TOO_LARGE",
  503: "SERVICE_UNAVAILABLE",
  500: "INTERNAL_SERVER_ERROR",
};

export interface HttpServerOptions {
  /** Resolvers that replace the standard ones (the N+1 benchmark's naive set); never used in production. */
  resolverOverrides?: Resolvers[];
  /** Largest uploaded file, in bytes; by default the container's `limits.maxUploadBytes` (else 2 GiB). */
  maxUploadBytes?: number;
}

export interface RunningHttpServer {
  server: Server;
  apollo: ApolloServer<GraphQLContext>;
  close(): Promise<void>;
}

export async function createHttpServer(container: Container, options: HttpServerOptions = {}): Promise<RunningHttpServer> {
  const { services, metrics, logger, database, cache } = container;
  const loginHash = container.trustedDocuments.hashOf("Login");
  if (!loginHash) throw new Error("The persisted-documents manifest has no Login operation (operations/auth.graphql)");
  const graphiql = createGraphiqlHandler(loginHash);
  const maxUploadBytes = options.maxUploadBytes ?? container.limits?.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  const limiter = container.rateLimiter ?? createRateLimiter({ perSecond: 0, burst: 1 });
  const { apollo, graphql, answerFromCache, schema, validationRules } = await createGraphQLRoute(container, {
    resolverOverrides: options.resolverOverrides,
    maxUploadBytes,
    admitResolved: limiter.enabled
      ? (viewerId, token, res, requestId) => {
          const decision = limiter.take(rateKey(viewerId, token, undefined));
          if (decision.ok) return true;
          metrics.rateLimitedTotal.inc();
          sendRateLimited(res, requestId, decision.retryAfterSeconds, limiter.perSecond);
          return false;
        }
      : undefined,
  });
  const upload = createUploadRoute({ auth: services.auth, ingest: services.ingest, logger });
  const download = createExportRoute({ links: container.exportLinks, exports: services.exports, logger });

  /** Graceful shutdown: once closing, new requests get 503 while those in flight finish. */
  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  /** Label-bound HTTP metrics, looked up once per (method, route, status): a hit should not hash label objects. */
  const httpSeries = new Map<string, { count: { inc(): void }; duration: { observe(value: number): void } }>();
  function observeHttp(req: IncomingMessage, res: ServerResponse, started: number) {
    const method = req.method ?? "GET";
    const path = (req.url ?? "/").split("?")[0];
    const route =
      path === "/graphql" || path === "/healthz" || path === "/readyz" || path === "/metrics" ? path
        : UPLOAD_ROUTE.test(path) ? "/data-sources/:id/file"
        : UPLOAD_STATUS_ROUTE.test(path) ? "/uploads/:id"
        : EXPORT_ROUTE.test(path) ? "/exports/job-results/:id.csv"
        : path.startsWith(GRAPHIQL_ASSET_PREFIX) ? `${GRAPHIQL_ASSET_PREFIX}*`
        : "other";
    const name = `${method} ${route} ${res.statusCode}`;
    let series = httpSeries.get(name);
    if (!series) {
      series = {
        count: metrics.httpRequestsTotal.labels(method, route, String(res.statusCode)),
        duration: metrics.httpRequestDuration.labels(method, route),
      };
      httpSeries.set(name, series);
    }
    series.count.inc();
    series.duration.observe((performance.now() - started) / 1000);
  }

  /** A cache hit from the listener: always POST /graphql 200, so its series is bound once. */
  const hitCount = metrics.httpRequestsTotal.labels("POST", "/graphql", "200");
  const hitDuration = metrics.httpRequestDuration.labels("POST", "/graphql");
  function observeHit(started: number) {
    hitCount.inc();
    hitDuration.observe((performance.now() - started) / 1000);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, preread?: string, started = performance.now()): Promise<void> {
    inFlight += 1;
    try {
      await route(req, res, preread);
    } finally {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
      observeHttp(req, res, started);
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse, preread?: string): Promise<void> {
    const requestId = requestIdOf(req);
    res.setHeader("x-request-id", requestId);
    const path = (req.url ?? "/").split("?")[0];
    const uploadTarget = UPLOAD_ROUTE.exec(path);
    const uploadStatusTarget = UPLOAD_STATUS_ROUTE.exec(path);
    const exportTarget = EXPORT_ROUTE.exec(path);
    try {
      if (closing) {
        res.setHeader("connection", "close").setHeader("retry-after", "1");
        throw new HttpError(503, "The server is shutting down: retry on another instance");
      }
      if (path === "/graphql" && graphiql.wantsPage(req)) {
        graphiql.sendPage(req, res);
      } else if (path === "/graphql") {
        const scope: RequestScope = { requestId, sqlStatements: 0 };
        // An upload streams into the operation from the start: all of it runs in the request scope.
        const upload = req.headers["content-type"]?.toLowerCase().startsWith("multipart/form-data");
        await (upload ? runInRequestScope(scope, () => graphql(req, res, scope)) : graphql(req, res, scope, preread));
      } else if (uploadTarget) {
        await runInRequestScope({ requestId, sqlStatements: 0 }, () => upload.put(req, res, decodeURIComponent(uploadTarget[1])));
      } else if (uploadStatusTarget) {
        await runInRequestScope({ requestId, sqlStatements: 0 }, () => upload.status(req, res, decodeURIComponent(uploadStatusTarget[1])));
      } else if (exportTarget) {
        await runInRequestScope({ requestId, sqlStatements: 0 }, () => download(req, res, decodeURIComponent(exportTarget[1])));
      } else if (path === "/healthz") {
        res.setHeader("content-type", "application/json").end(JSON.stringify({ status: "ok" }));
      } else if (path === "/readyz") {
        // Ready when PostgreSQL answers: without it nothing can be answered. Redis gone only degrades the instance
        // (the cache bypasses itself, the rate limit counts per instance, every request is still answered), so it
        // stays in its load balancer's rotation and says so: taking every instance out for Redis would turn a
        // slower service into none.
        const databaseUp = await database.pool.query("SELECT 1").then(() => true, () => false);
        const redis = cache.stats().redis;
        res.statusCode = databaseUp ? 200 : 503;
        res.setHeader("content-type", "application/json").end(
          JSON.stringify({
            status: !databaseUp ? "unavailable" : redis === "DEGRADED" ? "degraded" : "ready",
            database: databaseUp ? "ok" : "unreachable",
            redis: redis === "UP" ? "ok" : redis === "DEGRADED" ? "unreachable" : "not configured",
          }),
        );
      } else if (path.startsWith(GRAPHIQL_ASSET_PREFIX)) {
        if (!graphiql.sendAsset(req, res, path)) throw new HttpError(404, `No GraphiQL asset at ${path}`);
      } else if (path === "/metrics") {
        res.setHeader("content-type", metrics.registry.contentType).end(await metrics.registry.metrics());
      } else {
        throw new HttpError(404, `Nothing at ${path}: the GraphQL endpoint is /graphql`);
      }
    } catch (error) {
      const unavailable = findDatabaseUnavailable(error);
      if (unavailable) res.setHeader("retry-after", "1");
      const status = error instanceof HttpError || error instanceof MultipartError ? error.status : unavailable ? 503 : 500;
      if (status === 500) logger.error({ err: error, requestId }, "unexpected error handling HTTP request");
      if (!res.headersSent) {
        res.statusCode = status;
        res.setHeader("content-type", "application/json");
        const message = status === 500 ? `Internal server error; quote request id ${requestId}` : (unavailable ?? (error as Error)).message;
        const code = (error instanceof HttpError ? error.code : undefined) ?? HTTP_ERROR_CODES[status] ?? "BAD_REQUEST";
        res.end(JSON.stringify({ errors: [{ message, extensions: { code, requestId } }] }));
      } else {
        res.end();
      }
    }
  }

  /**
   * The rate limit, before anything else of a GraphQL request (cache hits included), for requests whose viewer is
   * known or that have no token; a token seen for the first time is counted by the route once its user is known.
   * False when the request was refused (answered 429 with Retry-After).
   */
  function admitted(req: IncomingMessage, res: ServerResponse, started: number): boolean {
    let token: string | undefined;
    try {
      token = bearerToken(req);
    } catch {
      return true; // the ordinary path answers the malformed header
    }
    const known = cache.knownViewer(token);
    if (!countsInListener(token, known)) return true;
    const decision = limiter.take(rateKey(known?.id, token, req.socket.remoteAddress));
    if (decision.ok) return true;
    metrics.rateLimitedTotal.inc();
    sendRateLimited(res, requestIdOf(req), decision.retryAfterSeconds, limiter.perSecond);
    observeHttp(req, res, started);
    return false;
  }

  function listener(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const url = req.url ?? "/";
    if (limiter.enabled && (url === "/graphql" || url.startsWith("/graphql?")) && !admitted(req, res, started)) return;
    const contentType = req.headers["content-type"]?.toLowerCase();
    const length = Number(req.headers["content-length"]);
    const candidate =
      cache.enabled && !closing && req.method === "POST" && (url === "/graphql" || url.startsWith("/graphql?")) &&
      isJsonMediaType(contentType) && length <= MAX_BODY_BYTES; // a known, allowed length: no 413 to give here
    if (!candidate) return void handle(req, res);
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.once("end", () => {
      const text = chunks.length === 1 ? chunks[0].toString("utf8") : Buffer.concat(chunks).toString("utf8");
      if (answerFromCache(req, res, text, started)) observeHit(started);
      else void handle(req, res, text, started);
    });
  }

  const server = createServer({ requestTimeout: REQUEST_TIMEOUT_MS }, listener);
  const subscriptions = attachSubscriptions({ server, schema, validationRules, container, limiter });
  return {
    server,
    apollo,
    /** Stops accepting connections, answers 503 to new requests, and resolves when in-flight ones are done. */
    async close() {
      closing = true;
      await subscriptions.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
      // Keep-alive connections that carried the last requests are idle now.
      server.closeIdleConnections();
      await stopped;
      await apollo.stop();
    },
  };
}

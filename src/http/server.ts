/**
 * The HTTP front: a plain node:http server that routes `/graphql` to Apollo Server (or, for a browser, to the
 * offline GraphiQL page of ./graphiql.ts, with its assets under `/graphiql/`) and serves `/healthz`, `/readyz` and
 * `/metrics`. Responsible for request ids, the request scope (SQL statement counting), body size limits and
 * resolving the viewer from the bearer token.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { ApolloServer, HeaderMap, type HTTPGraphQLRequest } from "@apollo/server";
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from "@apollo/server/plugin/disabled";
import { GraphQLError } from "graphql";
import type { Container } from "../container.js";
import type { GraphQLContext } from "../graphql/context.js";
import { createErrorFormatter } from "../graphql/format-error.js";
import { createLoaders } from "../graphql/loaders.js";
import type { Resolvers } from "../graphql/resolver-types.js";
import { createSchema } from "../graphql/schema.js";
import { sqlStatementsPlugin } from "../graphql/sql-statements-plugin.js";
import { runInRequestScope } from "../observability/request-scope.js";
import { createGraphiqlHandler, GRAPHIQL_ASSET_PREFIX } from "./graphiql.js";

/** Largest request body accepted on /graphql (uploads will have their own streaming path). */
export const MAX_BODY_BYTES = 1024 * 1024;
const REQUEST_ID = /^[\w.:-]{1,128}$/;
const HTTP_ERROR_CODES: Record<number, string> = {
  401: "UNAUTHENTICATED",
  404: "NOT_FOUND",
  413: "PAYLOAD_TOO_LARGE",
  503: "SERVICE_UNAVAILABLE",
  500: "INTERNAL_SERVER_ERROR",
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `Request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function parseJsonBody(text: string, contentType: string | undefined): unknown {
  if (!text) return undefined;
  if (!contentType?.includes("json")) return text;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `Request body is not valid JSON: ${(error as Error).message}`);
  }
}

function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw new HttpError(401, "Authorization header must be 'Bearer <token>'");
  return match[1];
}

export interface HttpServerOptions {
  /** Resolvers that replace the standard ones (the N+1 benchmark's naive set); never used in production. */
  resolverOverrides?: Resolvers[];
}

export interface RunningHttpServer {
  server: Server;
  apollo: ApolloServer<GraphQLContext>;
  close(): Promise<void>;
}

export async function createHttpServer(container: Container, options: HttpServerOptions = {}): Promise<RunningHttpServer> {
  const { services, repos, metrics, logger, exposeSqlStatements, database } = container;
  const apollo = new ApolloServer<GraphQLContext>({
    schema: createSchema(options.resolverOverrides),
    formatError: createErrorFormatter(logger),
    includeStacktraceInErrorResponses: false,
    csrfPrevention: true,
    allowBatchedHttpRequests: false,
    // Apollo's landing page loads from a CDN; browsers get our offline GraphiQL instead (routed below).
    plugins: [
      sqlStatementsPlugin(metrics, exposeSqlStatements),
      ApolloServerPluginLandingPageDisabled(),
      // Apollo's cache hints wrap every resolver; recon's response cache does not use them.
      ApolloServerPluginCacheControlDisabled(),
    ],
  });
  await apollo.start();
  const graphiql = createGraphiqlHandler();

  async function graphql(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(", ") : value);
    }
    const body = req.method === "POST" ? parseJsonBody(await readBody(req), req.headers["content-type"]) : undefined;
    const token = bearerToken(req);
    const httpGraphQLRequest: HTTPGraphQLRequest = { method: req.method ?? "GET", headers, search: url.search, body };
    const result = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest,
      context: async () => {
        const viewer = await services.auth.viewerFromToken(token);
        if (token && !viewer) {
          throw new GraphQLError("The bearer token is invalid or expired, or its user is deactivated: sign in again", {
            extensions: { code: "UNAUTHENTICATED", http: { status: 401 } },
          });
        }
        return { viewer, services, loaders: createLoaders(repos, viewer, metrics), requestId };
      },
    });
    res.statusCode = result.status ?? 200;
    for (const [key, value] of result.headers) res.setHeader(key, value);
    if (result.body.kind === "complete") {
      res.end(result.body.string);
    } else {
      for await (const chunk of result.body.asyncIterator) res.write(chunk);
      res.end();
    }
  }

  /** Graceful shutdown: once closing, new requests get 503 while those in flight finish. */
  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    inFlight += 1;
    try {
      await route(req, res);
    } finally {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const incoming = req.headers["x-request-id"];
    const requestId = typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader("x-request-id", requestId);
    const path = (req.url ?? "/").split("?")[0];
    try {
      if (closing) {
        res.setHeader("connection", "close").setHeader("retry-after", "1");
        throw new HttpError(503, "The server is shutting down: retry on another instance");
      }
      if (path === "/graphql" && graphiql.wantsPage(req)) {
        graphiql.sendPage(req, res);
      } else if (path === "/graphql") {
        await runInRequestScope({ requestId, sqlStatements: 0 }, () => graphql(req, res, requestId));
      } else if (path === "/healthz") {
        res.setHeader("content-type", "application/json").end(JSON.stringify({ status: "ok" }));
      } else if (path === "/readyz") {
        try {
          await database.pool.query("SELECT 1");
          res.setHeader("content-type", "application/json").end(JSON.stringify({ status: "ready", database: "ok" }));
        } catch {
          res.statusCode = 503;
          res.setHeader("content-type", "application/json").end(JSON.stringify({ status: "unavailable", database: "unreachable" }));
        }
      } else if (path.startsWith(GRAPHIQL_ASSET_PREFIX)) {
        if (!graphiql.sendAsset(req, res, path)) throw new HttpError(404, `No GraphiQL asset at ${path}`);
      } else if (path === "/metrics") {
        res.setHeader("content-type", metrics.registry.contentType).end(await metrics.registry.metrics());
      } else {
        throw new HttpError(404, `Nothing at ${path}: the GraphQL endpoint is /graphql`);
      }
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 500;
      if (status === 500) logger.error({ err: error, requestId }, "unexpected error handling HTTP request");
      if (!res.headersSent) {
        res.statusCode = status;
        res.setHeader("content-type", "application/json");
        const message = status === 500 ? `Internal server error; quote request id ${requestId}` : (error as Error).message;
        const code = HTTP_ERROR_CODES[status] ?? "BAD_REQUEST";
        res.end(JSON.stringify({ errors: [{ message, extensions: { code, requestId } }] }));
      } else {
        res.end();
      }
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  return {
    server,
    apollo,
    /** Stops accepting connections, answers 503 to new requests, and resolves when in-flight ones are done. */
    async close() {
      closing = true;
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

/**
 * The GraphQL route: Apollo Server with recon's schema, limits and plugins, behind the response cache. Responsible
 * for answering `/graphql` requests — from cache when it can (a hit is the stored bytes written back, before
 * Apollo parses anything), otherwise by executing inside the request scope and storing what may be stored — and
 * for multipart uploads streaming into their operation.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { ApolloServer, HeaderMap, type ApolloServerPlugin, type HTTPGraphQLRequest } from "@apollo/server";
import { ApolloArmor } from "@escape.tech/graphql-armor";
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from "@apollo/server/plugin/disabled";
import { GraphQLError, Kind, type DocumentNode, type ValidationContext } from "graphql";
import type { Viewer } from "../auth/policy.js";
import { CacheBypass, type StoredAnswer, type WarmRecipe } from "../cache/response-cache.js";
import type { CacheablePlan } from "../cache/request-key.js";
import { tags } from "../cache/tags.js";
import type { Container } from "../container.js";
import type { GraphQLContext } from "../graphql/context.js";
import { createErrorFormatter } from "../graphql/format-error.js";
import { createLoaders } from "../graphql/loaders.js";
import type { Resolvers } from "../graphql/resolver-types.js";
import { responseCachePlugin, type CacheNote } from "../graphql/response-cache-plugin.js";
import { retryAfterPlugin } from "../graphql/retry-after-plugin.js";
import { createSchema } from "../graphql/schema.js";
import { sqlStatementsPlugin } from "../graphql/sql-statements-plugin.js";
import { textInputPlugin } from "../graphql/text-input-plugin.js";
import { currentRequestScope, runInRequestScope, type RequestScope } from "../observability/request-scope.js";
import { cachedCompressed, COMPRESS_MIN_BYTES, compressBody, preferredEncoding } from "./compression.js";
import { parseGraphQLMultipart, type ParsedMultipart } from "./multipart.js";
import { documentIdInSearch, documentIdToPersistedQuery, type OperationParams } from "../graphql/trusted-documents.js";
import { asyncPreference, bearerToken, HttpError, isJsonMediaType, MAX_BODY_BYTES, parseJsonBody, readBody, requestIdOf } from "./request-utils.js";

/**
 * Limits on one GraphQL operation (graphql-armor); see createGraphQLRoute. Cost: armor multiplies a list's cost by
 * its literal `first`; a page of 100 projects with owner and counts costs ~4,000, with 5 jobs each ~34,000, with
 * 100 jobs each ~555,000 (refused), as are 100 users with 20 projects each (~112,000).
 */
export const OPERATION_LIMITS = { depth: 10, cost: 50_000, aliases: 15, directives: 50, tokens: 1000 };

/**
 * graphql-armor with recon's operation limits (the server's, and the unit test that keeps every persisted
 * operation within them). Field suggestions ("did you mean …") would reveal the schema when introspection is off.
 */
export function operationArmor(options: { blockFieldSuggestion: boolean }) {
  return new ApolloArmor({
    maxDepth: { n: OPERATION_LIMITS.depth },
    costLimit: { maxCost: OPERATION_LIMITS.cost },
    maxAliases: { n: OPERATION_LIMITS.aliases },
    maxDirectives: { n: OPERATION_LIMITS.directives },
    maxTokens: { n: OPERATION_LIMITS.tokens },
    blockFieldSuggestion: { enabled: options.blockFieldSuggestion },
  }).protect();
}

/**
 * The cost limit of ad-hoc operations when trusted documents are enforced (RECON_TRUSTED_DOCUMENTS=on), on top of
 * OPERATION_LIMITS: a tenth of the ordinary one. Manifest operations were reviewed and checked in CI; an ad-hoc one
 * (an analyst's GraphiQL) was not, so one request may cost less: a 100-row page with its single related objects
 * and counts (~3,100 as armor prices `projects(first: 100) { … owner { name } jobCount dataSourceCount }`) passes,
 * nested lists across a full page (100 projects × 5 jobs, ~30,000) do not — page instead. The heaviest manifest
 * operation (a page of discrepancies with their records) costs ~1,400.
 */
export const AD_HOC_COST_LIMIT = 5_000;

/** Whether every operation of a document asks only for schema metadata (`__schema`, `__type`, `__typename`). */
function isIntrospection(document: DocumentNode): boolean {
  return document.definitions.every(
    (definition) =>
      definition.kind !== Kind.OPERATION_DEFINITION ||
      definition.selectionSet.selections.every((selection) => selection.kind === Kind.FIELD && selection.name.value.startsWith("__")),
  );
}

/** How long the end of an upload (its closing boundary) may take to arrive once the answer is out. */
const UPLOAD_END_GRACE_MS = 10_000;

/**
 * The Server-Timing header of an executed request: time in SQL (and how many statements), and in total. Browsers'
 * developer tools show it next to the request.
 */
function serverTiming(scope: RequestScope, started: number): string {
  const total = performance.now() - started;
  return `db;desc="${scope.sqlStatements} SQL statements";dur=${(scope.sqlMs ?? 0).toFixed(2)}, total;dur=${total.toFixed(2)}`;
}

/**
 * After the answer to an upload: reads what is left of the request (the closing boundary; files the operation did
 * not need), so the connection can carry the next one; destroys it if that does not come within the grace time.
 */
async function readRestOfUpload(req: IncomingMessage, multipart: ParsedMultipart): Promise<void> {
  multipart.release();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, UPLOAD_END_GRACE_MS, true)));
  const isLate = await Promise.race([multipart.done.then(() => false, () => false), late]);
  clearTimeout(timer);
  if (isLate) req.destroy();
}

export interface GraphQLRouteOptions {
  /** Resolvers that replace the standard ones (tests and the N+1 benchmark); never used in production. */
  resolverOverrides?: Resolvers[];
  /** Largest uploaded file, in bytes. */
  maxUploadBytes: number;
  /**
   * Counts a request whose token's user was not yet known when the request listener checked the rate limit
   * (http/rate-limit.ts); false: it was answered 429.
   */
  admitResolved?: (viewerId: string | null, token: string, res: ServerResponse, requestId: string) => boolean;
}

export async function createGraphQLRoute(container: Container, options: GraphQLRouteOptions) {
  const { services, repos, metrics, logger, exposeSqlStatements, cache, trustedDocuments: trusted } = container;
  const { maxUploadBytes } = options;
  // Operation limits (graphql-armor), sized for recon's schema: its deepest useful query — projects → edges →
  // node → jobs → edges → node → field — is 7 levels; GraphiQL's introspection (ignored by depth and cost) is
  // under 200 tokens. Field suggestions are blocked in production.
  const armor = operationArmor({ blockFieldSuggestion: !exposeSqlStatements });
  // Ad-hoc operations of a trusted-documents server also meet the stricter cost (armor's cost rule alone).
  const adHocCost = new ApolloArmor({
    costLimit: { maxCost: AD_HOC_COST_LIMIT },
    maxDepth: { enabled: false },
    maxAliases: { enabled: false },
    maxDirectives: { enabled: false },
    maxTokens: { enabled: false },
    blockFieldSuggestion: { enabled: false },
  }).protect().validationRules;
  const schema = createSchema(options.resolverOverrides);
  const validationRules = [
    ...armor.validationRules.map((rule) => (context: ValidationContext) => (isIntrospection(context.getDocument()) ? {} : rule(context))),
    ...adHocCost.map((rule) => (context: ValidationContext) => {
      const document = context.getDocument();
      return isIntrospection(document) || !trusted.adHocDocument(document.loc?.source.body) ? {} : rule(context);
    }),
  ];
  // A request sending only a manifest operation's hash shares its text's cache key, and is known as query or not.
  cache.knowDocuments(trusted.manifest.values());
  const apollo = new ApolloServer<GraphQLContext>({
    schema,
    // Introspection (all root fields `__schema`/`__type`) is exempt from depth and cost: armor prices GraphiQL's
    // introspection query at ~550,000. It stays bounded by the token limit, and is off in production — except with
    // trusted documents, where it is an ad-hoc operation, which only ANALYSTs and ADMINs may send (GraphiQL's docs).
    validationRules,
    introspection: trusted.enforce ? true : undefined,
    // The manifest, so its operations run by hash alone (see graphql/trusted-documents.ts).
    persistedQueries: { cache: trusted.apqCache },
    formatError: createErrorFormatter(logger),
    includeStacktraceInErrorResponses: false,
    csrfPrevention: true,
    allowBatchedHttpRequests: false,
    // Apollo's landing page loads from a CDN; browsers get our offline GraphiQL instead (routed by server.ts).
    plugins: [
      // Armor's plugins read nothing of the context: they are written for any.
      ...(armor.plugins as ApolloServerPlugin<GraphQLContext>[]),
      sqlStatementsPlugin(metrics, exposeSqlStatements, container.slowOperationMs === undefined ? undefined : { ms: container.slowOperationMs, logger }),
      responseCachePlugin(),
      retryAfterPlugin(),
      textInputPlugin(),
      ApolloServerPluginLandingPageDisabled(),
      // Apollo's cache hints wrap every resolver; recon's response cache does not use them.
      ApolloServerPluginCacheControlDisabled(),
    ],
  });
  await apollo.start();

  /** Apollo's answer to one request, with the note its cache plugin left. */
  async function execute(
    httpGraphQLRequest: HTTPGraphQLRequest,
    viewer: Viewer | null,
    tokenSent: boolean,
    requestId: string,
    note: CacheNote,
    clientAddress: string | null = null,
    respondAsync?: GraphQLContext["respondAsync"],
  ) {
    return apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest,
      context: async () => {
        if (tokenSent && !viewer) {
          throw new GraphQLError("The bearer token is invalid or expired, or its user is deactivated: sign in again", {
            extensions: { code: "UNAUTHENTICATED", http: { status: 401 } },
          });
        }
        return { viewer, services, loaders: createLoaders(repos, viewer, metrics), requestId, cacheNote: note, clientAddress, respondAsync };
      },
    });
  }

  /**
   * Executes a request the cache may answer next time: records the tags of everything it reads (plus the viewer's
   * own, since any resolver may show the viewer), and stores the answer if it is a successful query that no
   * invalidation superseded while it ran.
   */
  async function executeCacheable(plan: CacheablePlan, request: HTTPGraphQLRequest, viewer: Viewer | null, tokenSent: boolean, requestId: string, recipe: WarmRecipe | null) {
    const ticket = cache.ticket();
    const reads = new Set<string>(viewer ? [tags.user(viewer.id)] : []);
    const scope = currentRequestScope();
    if (scope) scope.cacheReads = reads;
    const note: CacheNote = { cacheable: false };
    const result = await execute(request, viewer, tokenSent, requestId, note);
    if (scope) scope.cacheReads = undefined;
    let answer: StoredAnswer | null = null;
    if (note.cacheable && (result.status ?? 200) === 200 && result.body.kind === "complete") {
      answer = { body: result.body.string, tags: [...reads], operation: plan.operationName };
      await cache.store(plan, answer, ticket, recipe);
    }
    return { result, answer };
  }

  /** Replays a remembered request as its viewer (warming): the answer is stored, nothing is sent. */
  cache.setWarmer(async (recipe) => {
    const user = recipe.viewerId ? await repos.users.findById(recipe.viewerId) : null;
    if (recipe.viewerId && !user?.isActive) return;
    const viewer: Viewer | null = user && { id: user.id, email: user.email, name: user.name, role: user.role };
    const body = { query: recipe.query, operationName: recipe.operationName, variables: recipe.variables };
    const plan = cache.plan(body, viewer);
    if (plan.kind !== "cacheable") return;
    const headers = new HeaderMap([["content-type", "application/json"]]);
    await runInRequestScope({ requestId: "cache-warming", sqlStatements: 0 }, () =>
      executeCacheable(plan, { method: "POST", headers, search: "", body }, viewer, false, "cache-warming", null),
    );
  });

  function sendAnswer(req: IncomingMessage, res: ServerResponse, answer: StoredAnswer & { bytes?: Buffer }, status: "HIT" | "MISS") {
    res.statusCode = 200;
    res.setHeader("server-timing", `cache;desc="${status.toLowerCase()}"`);
    res.setHeader("content-type", "application/json; charset=utf-8");
    res.setHeader("x-cache", status);
    const bytes = answer.bytes ?? Buffer.from(answer.body);
    if (bytes.length < COMPRESS_MIN_BYTES) return void res.end(bytes);
    res.setHeader("vary", "accept-encoding");
    const encoding = preferredEncoding(req);
    if (!encoding) return void res.end(bytes);
    res.setHeader("content-encoding", encoding);
    res.end(cachedCompressed(answer.bytes ? (answer as { bytes: Buffer }) : { bytes }, encoding));
  }

  /** What a GET or JSON POST asks for, as the cache keys it (multipart uploads are never cached). */
  function cacheParams(method: string, search: string, body: unknown) {
    if (method === "POST") return body && typeof body === "object" ? (body as Record<string, unknown>) : null;
    if (method !== "GET") return null;
    const query = new URLSearchParams(search);
    const json = (name: string) => {
      const value = query.get(name);
      return value ? JSON.parse(value) : undefined;
    };
    try {
      return { query: query.get("query") ?? undefined, operationName: query.get("operationName") ?? undefined, variables: json("variables"), extensions: json("extensions") };
    } catch {
      return null;
    }
  }

  /**
   * One GraphQL request. A cache hit is answered outside the request scope (AsyncLocalStorage context on every
   * promise of the path cost a third of a hit's throughput); whatever reaches the database runs inside it.
   */
  async function graphql(req: IncomingMessage, res: ServerResponse, scope: RequestScope, preread?: string): Promise<void> {
    const started = performance.now();
    const { requestId } = scope;
    const inScope = <T>(fn: () => Promise<T>): Promise<T> => (currentRequestScope() === scope ? fn() : runInRequestScope(scope, fn));
    const token = bearerToken(req);
    const method = req.method ?? "GET";
    const rawUrl = req.url ?? "/";
    // A `documentId` is sent on as Apollo's persisted-query extension.
    const search = documentIdInSearch(rawUrl.includes("?") ? rawUrl.slice(rawUrl.indexOf("?")) : "");
    let multipart: ParsedMultipart | undefined;
    let body: unknown;
    if (method === "POST" && req.headers["content-type"]?.toLowerCase().startsWith("multipart/form-data")) {
      // A file upload: the operation runs while its file streams in. Apollo still sees the multipart content-type,
      // so its CSRF prevention lets it through only with a preflight header.
      multipart = await parseGraphQLMultipart(req, { maxFileBytes: maxUploadBytes, maxFiles: 1, maxFieldBytes: MAX_BODY_BYTES }).catch(
        (error: unknown) => {
          res.setHeader("connection", "close");
          throw error;
        },
      );
      body = multipart.body;
    } else if (method === "POST") {
      body = parseJsonBody(preread ?? (await readBody(req)), req.headers["content-type"]);
    }
    if (body && typeof body === "object") documentIdToPersistedQuery(body as OperationParams);
    // An upload the operation did not read to its end is not read after the answer either (clients that have their
    // answer may stop sending): the connection closes instead.
    let abandonUpload = false;
    try {
      const known = cache.knownViewer(token);
      const viewer = known !== undefined ? known : await inScope(() => cache.viewerFor(token, () => services.auth.viewerFromToken(token)));
      if (token && known === undefined && options.admitResolved && !options.admitResolved(viewer?.id ?? null, token, res, requestId)) return;
      const sent = cacheParams(method, search, body);
      // Trusted documents: before the cache or Apollo sees the request, whoever the viewer is.
      // (A token that did not verify gets Apollo's 401 instead: signing in again is the fix.)
      const refusal = token && !viewer ? null : trusted.refusal(viewer, sent);
      if (refusal) throw new HttpError(400, refusal.message, refusal.code);
      const params = multipart ? null : sent;
      // CSRF prevention (Apollo's) must still judge requests the cache could answer: only those a browser cannot
      // send cross-site without a preflight are answered from cache — a JSON POST, or a GET with a preflight header.
      const preflighted = method === "POST" ? isJsonMediaType(req.headers["content-type"]) : Boolean(req.headers["apollo-require-preflight"] || req.headers["x-apollo-operation-name"]);
      const plan = params && preflighted ? cache.plan(params, viewer) : null;
      /** Redis failed this lookup: the request runs uncached. */
      let bypass = false;
      if (plan?.kind === "cacheable") {
        try {
          const hit = cache.peek(plan) ?? (await cache.lookup(plan));
          if (hit) return sendAnswer(req, res, hit, "HIT");
        } catch (error) {
          if (!(error instanceof CacheBypass)) throw error;
          bypass = true;
        }
      }
      // Past a hit, the request is Apollo's (inside the request scope: its SQL statements are counted).
      await inScope(async () => {
        // Apollo gets the headers and query string as received.
        const headers = new HeaderMap();
        for (const [key, value] of Object.entries(req.headers)) {
          if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(", ") : value);
        }
        const httpGraphQLRequest: HTTPGraphQLRequest = { method, headers, search, body };
        let result;
        if (plan?.kind === "cacheable" && !bypass) {
          cache.countMiss(plan);
          const recipe = typeof params?.query === "string"
              ? { query: params.query, operationName: (params.operationName as string) ?? null, variables: (params.variables as Record<string, unknown>) ?? null, viewerId: viewer?.id ?? null }
              : null;
          const run = () => executeCacheable(plan, httpGraphQLRequest, viewer, Boolean(token), requestId, recipe);
          if (plan.knownQuery) {
            let own: Awaited<ReturnType<typeof run>> | undefined;
            const flight = await cache.singleFlight(plan, async () => (own = await run()).answer);
            if (flight.shared && flight.answer) return sendAnswer(req, res, flight.answer, "HIT");
            result = (own ?? (await run())).result;
          } else {
            result = (await run()).result;
          }
          res.setHeader("x-cache", "MISS");
        } else {
          if (!bypass) cache.countBypass(typeof params?.operationName === "string" ? params.operationName : "(anonymous)");
          // An upload may be answered once its file is in, before the ingest commits (see upload-resolvers.ts).
          const preference = multipart ? asyncPreference(req, Date.now()) : undefined;
          const respondAsync = preference && { requested: preference.respondAsync, applied: false, answerBy: preference.answerBy };
          result = await execute(httpGraphQLRequest, viewer, Boolean(token), requestId, { cacheable: false }, req.socket.remoteAddress ?? null, respondAsync);
          if (respondAsync?.applied) res.setHeader("preference-applied", "respond-async");
          res.setHeader("x-cache", "BYPASS");
        }
        res.statusCode = result.status ?? 200;
        res.setHeader("server-timing", serverTiming(scope, started));
        for (const [key, value] of result.headers) res.setHeader(key, value);
        abandonUpload = multipart !== undefined && !req.complete && multipart.hasUnreadFiles();
        if (abandonUpload) res.setHeader("connection", "close");
        if (result.body.kind === "complete" && Buffer.byteLength(result.body.string) >= COMPRESS_MIN_BYTES && !multipart) {
          res.setHeader("vary", "accept-encoding");
          const encoding = preferredEncoding(req);
          if (encoding) {
            res.setHeader("content-encoding", encoding);
            res.end(await compressBody(result.body.string, encoding));
          } else {
            res.end(result.body.string);
          }
        } else if (result.body.kind === "complete") {
          res.end(result.body.string);
        } else {
          for await (const chunk of result.body.asyncIterator) res.write(chunk);
          res.end();
        }
      });
    } catch (error) {
      abandonUpload = multipart !== undefined && !req.complete;
      if (abandonUpload && !res.headersSent) res.setHeader("connection", "close");
      throw error;
    } finally {
      if (multipart && !abandonUpload) await readRestOfUpload(req, multipart);
    }
  }

  /**
   * The hot path of a cached answer: a JSON POST to /graphql whose viewer is remembered and whose answer is in L1
   * is answered synchronously as soon as its body has arrived — no promise, no request scope (with
   * AsyncLocalStorage active, each promise costs). Everything else, misses included, continues on the ordinary
   * path with the body already read.
   */
  function answerFromCache(req: IncomingMessage, res: ServerResponse, text: string, started: number): boolean {
    let token: string | undefined;
    let params: unknown;
    try {
      token = bearerToken(req);
      params = JSON.parse(text);
    } catch {
      return false; // the ordinary path answers with the error
    }
    const viewer = cache.knownViewer(token);
    if (viewer === undefined || !params || typeof params !== "object") return false;
    const plan = cache.plan(documentIdToPersistedQuery(params as Record<string, unknown>), viewer);
    if (plan.kind !== "cacheable") return false;
    // Trusted documents hold here too: a document outside the manifest is answered only to those who may send it
    // (the ordinary path refuses the others).
    if (!trusted.mayAdHoc(viewer) && !trusted.has(plan.persistedHash)) return false;
    const hit = cache.peek(plan);
    if (!hit) return false;
    // One writeHead with every header: the cheapest way node:http has to start a response.
    const headers = [
      "content-type", "application/json; charset=utf-8",
      "x-cache", "HIT",
      "x-request-id", requestIdOf(req),
      "server-timing", `cache;desc="hit";dur=${(performance.now() - started).toFixed(2)}`,
    ];
    const encoding = hit.bytes.length < COMPRESS_MIN_BYTES ? undefined : preferredEncoding(req);
    if (encoding === undefined) {
      res.writeHead(200, headers).end(hit.bytes);
    } else if (encoding) {
      res.writeHead(200, [...headers, "vary", "accept-encoding", "content-encoding", encoding]).end(cachedCompressed(hit, encoding));
    } else {
      res.writeHead(200, [...headers, "vary", "accept-encoding"]).end(hit.bytes);
    }
    return true;
  }

  return {
    apollo,
    /** The executable schema and operation limits, shared with GraphQL over WebSocket (http/subscriptions.ts). */
    schema,
    validationRules,
    /** Answers one /graphql request (its body already read when `preread` is given). */
    graphql,
    /** Answers a JSON POST synchronously from L1 if it can; false: the request needs `graphql`. */
    answerFromCache,
  };
}

export type GraphQLRoute = Awaited<ReturnType<typeof createGraphQLRoute>>;

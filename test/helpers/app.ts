/**
 * Starts the real app (src/app.ts) in-process on its own database and a random port, and talks to it over real
 * HTTP. Factories create users directly through the repositories; everything under test goes through GraphQL.
 */
import { hashPassword } from "../../src/auth/passwords.js";
import { startApp, type App } from "../../src/app.js";
import type { HttpServerOptions } from "../../src/http/server.js";
import { loadConfig } from "../../src/config.js";
import type { Role } from "../../src/generated/prisma/enums.js";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { LoginDocument } from "../../operations/generated/graphql.js";

export const ADMIN_EMAIL = "admin@recon.test";
export const ADMIN_PASSWORD = "admin-password-for-tests";
export const TEST_PASSWORD = "password-for-tests-1";

export interface GraphQLResponse<T = Record<string, any>> {
  status: number;
  headers: Headers;
  data?: T;
  errors?: { message: string; path?: string[]; extensions?: Record<string, any> }[];
  extensions?: Record<string, any>;
}

export interface TestUser {
  id: string;
  email: string;
  role: Role;
  token: string;
}

export interface TestApp {
  app: App;
  db: TestDatabase;
  url: string;
  admin: TestUser;
  /** Sends a GraphQL request body as it is (a persisted operation's hash, a `documentId`, …), with `token` as the bearer. */
  graphqlBody<T = Record<string, any>>(request: Record<string, unknown>, token?: string): Promise<GraphQLResponse<T>>;
  /** Sends a GraphQL operation over HTTP, with `token` as the bearer if given. */
  graphql<T = Record<string, any>>(query: string, variables?: Record<string, unknown>, token?: string): Promise<GraphQLResponse<T>>;
  /** Creates an active user with TEST_PASSWORD and signs them in. */
  createUser(role: Role, name?: string): Promise<TestUser>;
  login(email: string, password: string): Promise<string>;
  close(): Promise<void>;
}

let counter = 0;

export interface TestAppOptions {
  /** Another instance's database: this app shares it (and leaves dropping it to its owner). */
  database?: TestDatabase;
  /** Passed to the HTTP server (resolver overrides for tests that must pause an operation). */
  http?: HttpServerOptions;
}

export async function startTestApp(env: Record<string, string> = {}, options: TestAppOptions = {}): Promise<TestApp> {
  const db = options.database ?? (await createTestDatabase());
  const app = await startApp(
    loadConfig({
      DATABASE_URL: db.url,
      PORT: "0",
      LOG_LEVEL: "silent",
      RECON_ADMIN_EMAIL: ADMIN_EMAIL,
      RECON_ADMIN_PASSWORD: ADMIN_PASSWORD,
      RECON_JWT_SECRET: "a-test-secret-that-is-long-enough-123456",
      // No job worker unless a test asks for one: a worker writes to jobs in the background, and tests that
      // write jobs themselves (the cache fuzz) must be the only writers.
      RECON_WORKERS: "0",
      // No rate limit unless a test asks for one: suites send hundreds of requests a second as one viewer.
      RECON_RATE_LIMIT_PER_SECOND: "0",
      ...env,
    }),
    options.http,
  );

  async function graphqlBody<T>(request: Record<string, unknown>, token?: string): Promise<GraphQLResponse<T>> {
    const response = await fetch(app.url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(request),
    });
    const body = (await response.json()) as Omit<GraphQLResponse<T>, "status" | "headers">;
    return { status: response.status, headers: response.headers, ...body };
  }

  async function graphql<T>(query: string, variables?: Record<string, unknown>, token?: string): Promise<GraphQLResponse<T>> {
    return graphqlBody<T>({ query, variables }, token);
  }

  /** Signs in with the persisted `Login` operation, sent by hash (the way any client can, trusted documents on or off). */
  async function login(email: string, password: string): Promise<string> {
    const result = await graphqlBody<{ login: { token: string } }>({ operationName: "Login", variables: { email, password }, extensions: persistedQuery(LoginDocument) });
    if (!result.data?.login) throw new Error(`login failed for ${email}: ${JSON.stringify(result.errors)}`);
    return result.data.login.token;
  }

  const passwordHash = await hashPassword(TEST_PASSWORD);
  async function createUser(role: Role, name?: string): Promise<TestUser> {
    counter += 1;
    const email = `${role.toLowerCase()}-${counter}-${Math.random().toString(36).slice(2, 8)}@recon.test`;
    const user = await app.container.repos.users.create({ email, name: name ?? `${role} ${counter}`, role, passwordHash });
    return { id: user.id, email, role, token: await login(email, TEST_PASSWORD) };
  }

  const adminRow = await app.container.repos.users.findCredentials(ADMIN_EMAIL);
  const admin: TestUser = { id: adminRow!.id, email: ADMIN_EMAIL, role: "ADMIN", token: await login(ADMIN_EMAIL, ADMIN_PASSWORD) };

  return {
    app,
    db,
    url: app.url,
    admin,
    graphql,
    graphqlBody,
    createUser,
    login,
    async close() {
      await app.close();
      if (!options.database) await db.drop();
    },
  };
}

/** The data of a response that must have succeeded; fails the test with the errors otherwise. */
export function ok<T>(response: GraphQLResponse<T>): T {
  if (response.errors?.length || !response.data) {
    throw new Error(`expected success, got ${response.status}: ${JSON.stringify(response.errors)}`);
  }
  return response.data;
}

/** The `extensions.code` of the first error. */
export function errorCode(response: GraphQLResponse): string | undefined {
  return response.errors?.[0]?.extensions?.code;
}

/** The APQ extension naming a generated document by its persisted hash (codegen's `__meta__.hash`). */
export function persistedQuery(document: object): { persistedQuery: { version: 1; sha256Hash: string } } {
  const hash = (document as { __meta__?: { hash?: string } }).__meta__?.hash;
  if (!hash) throw new Error("not a persisted document (run npm run codegen)");
  return { persistedQuery: { version: 1, sha256Hash: hash } };
}

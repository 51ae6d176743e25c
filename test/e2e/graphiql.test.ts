/**
 * The GraphiQL page end to end, in Debian's headless Chromium driven by playwright-core: the page and all it
 * loads come from our own server (no CDN, no outside request of any kind), its Content-Security-Policy holds
 * (no violation reported), the sign-in bar signs in through the `login` mutation and its token is sent with the
 * next query, an Authorization header typed in GraphiQL's Headers tab is sent too, and the docs explorer shows the
 * schema's descriptions. Also checks over plain HTTP that GraphQL over GET and requests that do not ask for HTML
 * still reach Apollo.
 *
 * Chromium is required, not optional: without it every browser test fails with a message saying how to install it.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestApp, type TestApp } from "../helpers/app.js";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = "/tmp/graphiql.png";
/** The Query type's description in schema.graphql, as the docs explorer must show it. */
const QUERY_DESCRIPTION = "Read access. Lists return only what the viewer may see";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let t: TestApp;
let origin: string;

beforeAll(async () => {
  t = await startTestApp();
  origin = new URL(t.url).origin;
});
afterAll(() => t?.close());

describe("GET /graphql over HTTP", () => {
  it("serves the page to a browser, with a strict CSP and only local, cacheable assets", async () => {
    const response = await fetch(t.url, { headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = response.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/script-src[^;]*(unsafe|data:|\*)/);

    const html = await response.text();
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)/); // no inline script
    expect(html).not.toMatch(/(?:src|href)="(?:[a-z]+:)?\/\//i); // nothing absolute, nothing from elsewhere
    const scripts = [...html.matchAll(/<script[^>]*\ssrc="([^"]*)"/g)].map((m) => m[1]);
    const styles = [...html.matchAll(/<link rel="stylesheet" href="([^"]*)"/g)].map((m) => m[1]);
    expect(scripts).toHaveLength(5); // React, ReactDOM, GraphiQL, the graphql-ws client, our bootstrap
    expect(styles).toHaveLength(2); // GraphiQL's, ours
    const urls = [...scripts, ...styles];
    for (const url of urls) {
      expect(url).toMatch(/^\/graphiql\/[0-9a-f]{16}\/[\w.-]+$/);
      const asset = await fetch(origin + url);
      expect(asset.status, url).toBe(200);
      expect(asset.headers.get("content-type"), url).toMatch(url.endsWith(".css") ? /^text\/css/ : /^text\/javascript/);
      expect(asset.headers.get("cache-control"), url).toBe("public, max-age=31536000, immutable");
      await asset.arrayBuffer();
    }
    expect((await fetch(`${origin}/graphiql/0000000000000000/graphiql.min.js`)).status).toBe(404);
  });

  it("leaves GraphQL over GET, and requests that do not ask for HTML, to Apollo", async () => {
    const overGet = await fetch(`${t.url}?query=${encodeURIComponent("{ __typename }")}`, {
      headers: { accept: "text/html,application/json", "apollo-require-preflight": "true" },
    });
    expect(overGet.status).toBe(200);
    expect(await overGet.json()).toMatchObject({ data: { __typename: "Query" } });

    const notHtml = await fetch(t.url, { headers: { accept: "application/json" } });
    expect(notHtml.headers.get("content-type")).toMatch(/^application\/json/);
    expect(notHtml.status).toBe(400);
  });
});

/** Replaces the text of one of GraphiQL 4's editors, which are CodeMirror 5 instances, through CodeMirror's API. */
async function setEditor(page: Page, selector: string, text: string): Promise<void> {
  await page.locator(selector).waitFor();
  await page.evaluate(
    ([selector, text]) => {
      const element = document.querySelector(selector) as unknown as { CodeMirror: { setValue(text: string): void; focus(): void } };
      element.CodeMirror.setValue(text);
      element.CodeMirror.focus();
    },
    [selector, text],
  );
}

describe("GraphiQL in Chromium", () => {
  let context: BrowserContext;
  let page: Page;
  /** Every URL the browser asked for, from any page or worker of the context. */
  const requested: string[] = [];
  /** Console errors (CSP violations among them), uncaught exceptions and failed responses. */
  const problems: string[] = [];

  let browser: Browser | undefined;
  /** Why there is no browser: each test fails with it (a failed beforeAll would only mark them skipped). */
  let unavailable: Error | undefined;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      unavailable = new Error(`Chromium is missing at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (.ci/run does)`);
      return;
    }
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    } catch (error) {
      unavailable = new Error(`Chromium at ${CHROMIUM} did not start: ${(error as Error).message}`);
      return;
    }
    context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    context.on("request", (request) => requested.push(request.url()));
    page = await context.newPage();
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    page.on("pageerror", (error) => problems.push(error.message));
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} from ${response.url()}`);
    });
  });
  beforeEach(() => {
    if (unavailable) throw unavailable;
  });
  afterAll(async () => {
    await context?.close();
    await browser?.close();
  });

  it("loads, introspects the schema and makes no request outside our origin", async () => {
    const introspection = page.waitForResponse(
      (response) => response.url() === t.url && (response.request().postData() ?? "").includes("__schema"),
    );
    await page.goto(t.url);
    await page.locator(".graphiql-container").waitFor();
    const result = await (await introspection).json();
    expect(result.errors).toBeUndefined();
    expect(result.data.__schema.queryType.name).toBe("Query");
    // The default query explains how to sign in.
    await page.locator(".graphiql-query-editor").getByText("Authorization", { exact: false }).first().waitFor();
  });

  it("opens and closes a dialog (they inject styles: the CSP must allow them)", async () => {
    await page.getByRole("button", { name: "Open settings dialog" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("Persist headers").waitFor();
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
  });

  it("signs in with the sign-in bar and sends the token with the next query", async () => {
    await page.locator("#recon-email").fill(ADMIN_EMAIL);
    await page.locator("#recon-password").fill(ADMIN_PASSWORD);
    await page.locator("#recon-sign-in").click();
    await page.locator("#recon-who").getByText(ADMIN_EMAIL).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("recon.session"))).toContain('"token"');

    await setEditor(page, ".graphiql-query-editor .CodeMirror", "{ me { email role } }");
    const sent = page.waitForRequest((request) => request.url() === t.url && (request.postData() ?? "").includes("me { email role }"));
    await page.locator(".graphiql-execute-button").click();
    expect((await sent).headers().authorization).toMatch(/^Bearer \S+$/);
    await page.locator(".result-window").getByText(ADMIN_EMAIL).waitFor();
    await page.locator(".result-window").getByText('"ADMIN"', { exact: true }).waitFor();
  });

  it("shows schema descriptions in the docs explorer", async () => {
    await page.getByRole("button", { name: "Show Documentation Explorer" }).click();
    const docs = page.locator(".graphiql-doc-explorer");
    await docs.locator(".graphiql-doc-explorer-type-name", { hasText: /^Query$/ }).first().click();
    await docs.getByText(QUERY_DESCRIPTION).waitFor();
    await page.screenshot({ path: SCREENSHOT });
  });

  it("signs out", async () => {
    await page.locator("#recon-sign-out").click();
    await page.locator("#recon-login").waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("recon.session"))).toBeNull();
  });

  it("sends an Authorization header set in GraphiQL's Headers tab", async () => {
    await page.getByRole("button", { name: "Headers", exact: true }).click();
    const headers = JSON.stringify({ Authorization: `Bearer ${t.admin.token}` });
    await setEditor(page, ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror", headers);
    await setEditor(page, ".graphiql-query-editor .CodeMirror", "{ me { name } }");
    const sent = page.waitForRequest((request) => request.url() === t.url && (request.postData() ?? "").includes("me { name }"));
    await page.keyboard.press("Control+Enter");
    expect((await sent).headers().authorization).toBe(`Bearer ${t.admin.token}`);
    await page.locator(".result-window").getByText('"Administrator"', { exact: true }).waitFor();
  });

  it("runs a subscription over a WebSocket on /graphql and shows each state the job goes through", async () => {
    // A job nobody runs (this app has no worker): it stays QUEUED until it is cancelled over HTTP.
    const admin = t.admin.token;
    const project = (await t.graphql(`mutation { createProject(input: { name: "Live" }) { id } }`, {}, admin)).data!.createProject.id;
    const source = async (name: string) =>
      (await t.graphql(`mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }`, { p: project, n: name }, admin)).data!.createDataSource.id;
    const [left, right] = [await source("Ledger"), await source("Bank")];
    const job = (await t.graphql(`mutation($i: StartReconciliationInput!) { startReconciliation(input: $i) { id } }`, { i: { projectId: project, leftSourceId: left, rightSourceId: right } }, admin)).data!.startReconciliation.id;

    const socket = page.waitForEvent("websocket", (ws) => ws.url() === `${origin.replace(/^http/, "ws")}/graphql`);
    await setEditor(page, ".graphiql-query-editor .CodeMirror", `subscription { jobProgress(jobId: "${job}") { status phase } }`);
    await page.keyboard.press("Control+Enter");
    await socket;
    await page.locator(".result-window").getByText('"QUEUED"', { exact: true }).waitFor();
    await t.graphql(`mutation($id: ID!) { cancelReconciliation(jobId: $id) { status } }`, { id: job }, admin);
    await page.locator(".result-window").getByText('"CANCELLED"', { exact: true }).waitFor();
  });

    it("asked nothing of anyone but our server, and broke no rule of its CSP", () => {
    expect(requested.length).toBeGreaterThan(0);
    // data: URLs (GraphiQL's embedded fonts and icons) never leave the browser.
    const outside = requested.filter((url) => !url.startsWith("data:") && new URL(url).origin !== origin);
    expect(outside).toEqual([]);
    expect(problems).toEqual([]);
  });
});

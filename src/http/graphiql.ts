/**
 * The in-browser GraphQL IDE: serves a GraphiQL page at `GET /graphql` (for browsers) and its scripts and styles
 * under `/graphiql/`. Responsible for working fully offline — every asset comes from our own npm dependencies
 * (`graphiql`'s UMD build on React 18's UMD builds) or from `src/http/graphiql/`, never from a CDN — and for a
 * strict Content-Security-Policy: the page runs no inline script, and may talk only to its own origin.
 *
 * Assets are read once at start-up and kept in memory. Their URLs carry a hash of their content
 * (`/graphiql/<hash>/<file>`), so they can be cached for a year: a new release changes the URL, not the file
 * behind it. The page itself is never cached, so it always names the current assets.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** URL prefix of the IDE's assets. */
export const GRAPHIQL_ASSET_PREFIX = "/graphiql/";

/**
 * What the page may load and contact: scripts from us only (no inline script, no eval), fonts and images from us
 * or `data:` URLs (GraphiQL's stylesheet embeds its fonts and icons), requests to our own origin only. Styles
 * allow inline `<style>` because GraphiQL's dialogs (Radix, react-remove-scroll) inject one whose content varies
 * with the scrollbar width, so no hash could list it; styles cannot run code.
 */
export const GRAPHIQL_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self' data:",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

interface Asset {
  body: Buffer;
  contentType: string;
  /** The URL the page uses: `/graphiql/<content hash>/<file>`. */
  url: string;
}

const require = createRequire(import.meta.url);
const OWN_ASSETS = join(dirname(fileURLToPath(import.meta.url)), "graphiql");

/** The directory of an installed package (through its package.json: `exports` maps hide the other files). */
function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`));
}

function loadAsset(file: string, path: string): Asset {
  const body = readFileSync(path);
  const hash = createHash("sha256").update(body).digest("hex").slice(0, 16);
  const contentType = file.endsWith(".css") ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
  return { body, contentType, url: `${GRAPHIQL_ASSET_PREFIX}${hash}/${file}` };
}

/** Headers every IDE response carries, page and assets alike. */
function setCommonHeaders(res: ServerResponse): void {
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("referrer-policy", "no-referrer");
  res.setHeader("cross-origin-resource-policy", "same-origin");
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function renderPage(styles: Asset[], scripts: Asset[], loginHash: string): string {
  const links = styles.map((a) => `  <link rel="stylesheet" href="${escapeHtml(a.url)}">`).join("\n");
  const tags = scripts.map((a) => `  <script defer src="${escapeHtml(a.url)}"></script>`).join("\n");
  // The sign-in bar is plain markup; recon-graphiql.js wires it up and mounts GraphiQL into #graphiql.
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>recon · GraphiQL</title>
  <link rel="icon" href="data:,">
${links}
${tags}
</head>
<body data-login-hash="${escapeHtml(loginHash)}">
  <header class="recon-bar">
    <span class="recon-brand">recon</span>
    <form id="recon-login" class="recon-login" hidden>
      <input id="recon-email" name="email" type="email" placeholder="email" autocomplete="username" required>
      <input id="recon-password" name="password" type="password" placeholder="password" autocomplete="current-password" required>
      <button id="recon-sign-in" type="submit">Sign in</button>
    </form>
    <div id="recon-session" class="recon-session" hidden>
      Signed in as <strong id="recon-who"></strong>
      <a id="recon-sign-out" href="#">Sign out</a>
    </div>
    <output id="recon-message" class="recon-message" role="status"></output>
  </header>
  <main id="graphiql" class="recon-graphiql"><p class="recon-loading">Loading GraphiQL…</p></main>
  <noscript>GraphiQL needs JavaScript.</noscript>
</body>
</html>
`;
}

/** Serves the GraphiQL page and its assets; see the file comment. */
export interface GraphiqlHandler {
  /** True for a browser asking for `/graphql` as a page: GET or HEAD, accepting text/html, with no `query`. */
  wantsPage(req: IncomingMessage): boolean;
  /** Sends the page. */
  sendPage(req: IncomingMessage, res: ServerResponse): void;
  /** Sends the asset at `path` (under GRAPHIQL_ASSET_PREFIX) to a GET or HEAD; false if there is none (a 404). */
  sendAsset(req: IncomingMessage, res: ServerResponse, path: string): boolean;
}

/** Reads GraphiQL, React and our own bootstrap into memory and returns the handler that serves them. */
/**
 * `loginHash`: the persisted-document hash of the manifest's `Login` mutation, which the sign-in bar sends (a
 * trusted-documents server runs nothing else for an anonymous viewer).
 */
export function createGraphiqlHandler(loginHash: string): GraphiqlHandler {
  const react = packageDir("react");
  const reactDom = packageDir("react-dom");
  const graphiql = packageDir("graphiql");
  const graphqlWs = packageDir("graphql-ws");
  const styles = [
    loadAsset("graphiql.min.css", join(graphiql, "graphiql.min.css")),
    loadAsset("recon-graphiql.css", join(OWN_ASSETS, "recon-graphiql.css")),
  ];
  // Order matters: GraphiQL's UMD build reads the React and ReactDOM globals; our bootstrap reads GraphiQL's and
  // graphql-ws's.
  const scripts = [
    loadAsset("react.production.min.js", join(react, "umd", "react.production.min.js")),
    loadAsset("react-dom.production.min.js", join(reactDom, "umd", "react-dom.production.min.js")),
    loadAsset("graphiql.min.js", join(graphiql, "graphiql.min.js")),
    // The graphql-ws client (global `graphqlWs`): subscriptions run over a WebSocket on /graphql.
    loadAsset("graphql-ws.min.js", join(graphqlWs, "umd", "graphql-ws.min.js")),
    loadAsset("recon-graphiql.js", join(OWN_ASSETS, "recon-graphiql.js")),
  ];
  const assets = new Map([...styles, ...scripts].map((asset) => [asset.url, asset]));
  const page = Buffer.from(renderPage(styles, scripts, loginHash));

  return {
    wantsPage(req) {
      if (req.method !== "GET" && req.method !== "HEAD") return false;
      const url = new URL(req.url ?? "/", "http://localhost");
      if (url.searchParams.has("query")) return false; // GraphQL over GET: Apollo's.
      return (req.headers.accept ?? "").includes("text/html");
    },

    sendPage(req, res) {
      setCommonHeaders(res);
      res.setHeader("content-type", "text/html; charset=utf-8");
      res.setHeader("content-security-policy", GRAPHIQL_CSP);
      res.setHeader("cache-control", "no-cache");
      res.setHeader("content-length", page.length);
      res.end(req.method === "HEAD" ? undefined : page);
    },

    sendAsset(req, res, path) {
      const asset = assets.get(path);
      if (!asset || (req.method !== "GET" && req.method !== "HEAD")) return false;
      setCommonHeaders(res);
      res.setHeader("content-type", asset.contentType);
      res.setHeader("cache-control", "public, max-age=31536000, immutable");
      res.setHeader("content-length", asset.body.length);
      res.end(req.method === "HEAD" ? undefined : asset.body);
      return true;
    },
  };
}

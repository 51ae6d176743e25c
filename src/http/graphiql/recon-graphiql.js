/**
 * Browser bootstrap of recon's GraphiQL page (served by src/http/graphiql.ts, loaded after React, ReactDOM and
 * GraphiQL's UMD builds). Responsible for signing in and out with the sign-in bar, keeping the bearer token for
 * this tab only (sessionStorage: it dies with the tab and is never written to GraphiQL's localStorage), sending it
 * with every request, and mounting GraphiQL on /graphql. It is a file of its own, not an inline script, so the page's
 * Content-Security-Policy can forbid inline scripts altogether.
 */
(function () {
  "use strict";

  var ENDPOINT = "/graphql";
  var SESSION_KEY = "recon.session";

  // Kept narrow (under 56 columns): the query editor takes half of a laptop screen.
  var DEFAULT_QUERY = [
    "# Welcome to recon's GraphiQL.",
    "#",
    "# Sign in with the bar at the top of the page. The",
    "# token is kept for this browser tab only and sent",
    "# with every request as a header:",
    "#   Authorization: Bearer <token>",
    "#",
    "# Or set the header yourself in the Headers tab below",
    "# (it wins over the sign-in bar):",
    '#   { "Authorization": "Bearer <token>" }',
    "# with a token from the login mutation:",
    "#   mutation {",
    '#     login(email: "you@example.com", password: "...") {',
    "#       token",
    "#       expiresAt",
    "#     }",
    "#   }",
    "#",
    "# Docs (the book icon, top left) describes every",
    "# type and field. Run a query with Ctrl-Enter",
    "# (Cmd-Enter on a Mac) or the run button.",
    "",
    "{",
    "  me {",
    "    name",
    "    role",
    "  }",
    "  projects(first: 10) {",
    "    totalCount",
    "    edges {",
    "      node {",
    "        name",
    "        owner {",
    "          name",
    "        }",
    "        jobCount",
    "        dataSourceCount",
    "      }",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");

  // The sign-in bar sends the persisted `Login` operation by its hash (operations/auth.graphql; the page carries the
  // hash): a server enforcing trusted documents runs nothing else for someone not signed in yet.
  var LOGIN_HASH = document.body.getAttribute("data-login-hash");

  function byId(id) {
    return document.getElementById(id);
  }

  /** The stored session ({ token, expiresAt, user }), or null when absent or expired. */
  function loadSession() {
    try {
      var session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (session && session.token && new Date(session.expiresAt).getTime() > Date.now()) return session;
    } catch (_) {
      /* unreadable: treat as signed out */
    }
    sessionStorage.removeItem(SESSION_KEY);
    return null;
  }

  var session = loadSession();

  function showMessage(text, isError) {
    var message = byId("recon-message");
    message.textContent = text || "";
    message.classList.toggle("recon-error", Boolean(isError));
  }

  /** Shows the sign-in form or who is signed in, from `session`. */
  function renderSession() {
    byId("recon-login").hidden = Boolean(session);
    byId("recon-session").hidden = !session;
    byId("recon-who").textContent = session ? session.user.name + " <" + session.user.email + "> · " + session.user.role : "";
  }

  function signOut(reason) {
    session = null;
    sessionStorage.removeItem(SESSION_KEY);
    renderSession();
    mountGraphiQL();
    showMessage(reason || "", Boolean(reason));
  }

  function postGraphQL(body, headers) {
    return fetch(ENDPOINT, {
      method: "POST",
      headers: headers,
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
  }

  byId("recon-login").addEventListener("submit", function (event) {
    event.preventDefault();
    var button = byId("recon-sign-in");
    button.disabled = true;
    showMessage("Signing in…");
    var variables = { email: byId("recon-email").value, password: byId("recon-password").value };
    var login = { operationName: "Login", variables: variables, extensions: { persistedQuery: { version: 1, sha256Hash: LOGIN_HASH } } };
    postGraphQL(login, { "content-type": "application/json", accept: "application/json" })
      .then(function (response) {
        return response.json();
      })
      .then(function (result) {
        if (!result.data || !result.data.login) {
          throw new Error((result.errors && result.errors[0] && result.errors[0].message) || "Sign-in failed");
        }
        session = result.data.login;
        sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
        byId("recon-password").value = "";
        renderSession();
        mountGraphiQL();
        showMessage("");
      })
      .catch(function (error) {
        showMessage(error.message, true);
      })
      .finally(function () {
        button.disabled = false;
      });
  });

  byId("recon-sign-out").addEventListener("click", function (event) {
    event.preventDefault();
    signOut();
  });

  /**
   * Whether the operation GraphiQL is about to run is a subscription, judged from the text sent: the keyword
   * starting the named (or the only) operation, comments skipped. (GraphiQL's documentAST lags behind the editor
   * right after an edit, so it may describe the previous text.)
   */
  function isSubscription(params) {
    var text = String(params.query || "").replace(/#[^\n]*/g, "");
    var name = params.operationName ? "\\s+" + params.operationName + "\\b" : "\\b";
    return new RegExp("(^|\\})\\s*subscription" + name).test(text);
  }

  /**
   * A subscription runs over GraphQL over WebSocket (graphql-ws) on the same path, with the token as the
   * `authorization` connection parameter (a browser cannot set headers on a WebSocket). One connection per
   * subscription, closed when it ends or GraphiQL stops it.
   */
  function subscribe(params, authorization) {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + ENDPOINT;
    var client = graphqlWs.createClient({
      url: url,
      connectionParams: authorization ? { authorization: authorization } : {},
      retryAttempts: 0,
    });
    var iterator = client.iterate({ query: params.query, variables: params.variables, operationName: params.operationName });
    var finish = function () {
      client.dispose();
    };
    return {
      next: function () {
        return iterator.next().then(function (step) {
          if (step.done) finish();
          return step;
        });
      },
      return: function () {
        finish();
        return iterator.return ? iterator.return() : Promise.resolve({ done: true, value: undefined });
      },
      [Symbol.asyncIterator]: function () {
        return this;
      },
    };
  }

  /**
   * GraphiQL's fetcher: JSON over POST (which Apollo's CSRF prevention accepts), with the signed-in user's token;
   * headers from GraphiQL's Headers tab are applied last, so an Authorization set there wins. Subscriptions go
   * over a WebSocket instead (see subscribe).
   */
  function fetcher(params, options) {
    var headers = new Headers({ "content-type": "application/json", accept: "application/json" });
    if (session) headers.set("authorization", "Bearer " + session.token);
    var extra = (options && options.headers) || {};
    Object.keys(extra).forEach(function (name) {
      headers.set(name, String(extra[name]));
    });
    if (isSubscription(params)) return subscribe(params, headers.get("authorization"));
    var usedOurToken = Boolean(session) && headers.get("authorization") === "Bearer " + session.token;
    return postGraphQL(params, headers).then(function (response) {
      if (response.status === 401 && usedOurToken) signOut("Your session has ended: sign in again.");
      return response.json();
    });
  }

  var root = null;
  /**
   * Mounts GraphiQL anew for the current session (keyed by it), so it introspects the schema again: a server
   * enforcing trusted documents answers introspection only to ANALYSTs and ADMINs, so the docs explorer stays empty
   * until one signs in. The editors' contents live in GraphiQL's storage and survive the remount.
   */
  function mountGraphiQL() {
    if (!root) return;
    root.render(React.createElement(GraphiQL, { key: session ? session.token : "signed-out", fetcher: fetcher, defaultQuery: DEFAULT_QUERY }));
  }

  renderSession();
  root = ReactDOM.createRoot(byId("graphiql"));
  mountGraphiQL();
})();

import autocannon from "autocannon";
import { startApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
const app = await startApp(loadConfig({ NODE_ENV: "production", DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/recon_prof", PORT: "0", LOG_LEVEL: "warn", RECON_ADMIN_PASSWORD: "bench-admin-password", RECON_JWT_SECRET: "bench-cache-jwt-secret-not-for-production-use" }));
const login = await (await fetch(app.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: 'mutation { login(email: "admin@recon.local", password: "bench-admin-password") { token } }' }) })).json() as any;
const token = login.data.login.token;
const body = JSON.stringify({ query: `query Stats($id: ID!) { projectStats(projectId: $id) { recordCount matchedRecords suggestedRecords unmatchedRecords
      matchRate recordsBySource { recordCount dataSource { name } } lastJob { status } } }`, variables: { id: "00000000-0000-0000-0000-000000000000" } });
await fetch(app.url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body });
const r = await autocannon({ url: app.url, method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body, connections: 50, duration: 6, workers: 1 });
console.log(r.requests.average, r.latency.p99);
await app.close();
process.exit(0);

/** The slow-operation log: operations at or over the threshold are logged with their name and SQL count, never their variables. */
import { describe, expect, it } from "vitest";
import { sqlStatementsPlugin } from "../../src/graphql/sql-statements-plugin.js";
import { createMetrics } from "../../src/observability/metrics.js";

async function run(thresholdMs: number) {
  const warnings: { fields: Record<string, unknown>; message: string }[] = [];
  const logger = { warn: (fields: Record<string, unknown>, message: string) => warnings.push({ fields, message }) };
  const plugin = sqlStatementsPlugin(createMetrics(), false, { ms: thresholdMs, logger: logger as never });
  const hooks = await plugin.requestDidStart!({} as never);
  const response = { body: { kind: "single", singleResult: { data: {} } } };
  await (hooks as { willSendResponse: (context: unknown) => Promise<void> }).willSendResponse({
    response,
    operationName: "ProjectPage",
    request: { variables: { email: "someone@example.com" } },
    errors: undefined,
  });
  return warnings;
}

describe("slow GraphQL operations", () => {
  it("logs an operation that took at least the threshold, by name, without its variables", async () => {
    const [warning] = await run(0);
    expect(warning!.message).toBe("slow GraphQL operation");
    expect(warning!.fields).toMatchObject({ operation: "ProjectPage", sqlStatements: 0, errors: 0 });
    expect(typeof warning!.fields.durationMs).toBe("number");
    expect(JSON.stringify(warning)).not.toContain("someone@example.com");
  });

  it("logs nothing for a faster operation", async () => {
    expect(await run(60_000)).toEqual([]);
  });
});

/**
 * The frontend's operations (operations/*.graphql) and the persisted-documents manifest the server trusts: every
 * operation is in the manifest under the bare sha256 hex of its printed text (as codegen's client preset prints it:
 * the operation and the fragments it uses), the manifest holds nothing else, and every manifest operation passes
 * the server's own operation limits (graphql-armor), so no frontend request is refused by them.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { printExecutableGraphQLDocument } from "@graphql-tools/documents";
import { buildSchema, Kind, parse, specifiedRules, validate, visit, type DefinitionNode, type FragmentDefinitionNode } from "graphql";
import { describe, expect, it } from "vitest";
import { OPERATION_LIMITS, operationArmor } from "../../src/http/graphql-route.js";
import { loadManifest } from "../../src/graphql/trusted-documents.js";

const root = join(import.meta.dirname, "../..");
const schema = buildSchema(readFileSync(join(root, "schema.graphql"), "utf8"));
const manifest = loadManifest(join(root, "operations/generated/persisted-documents.json"));
const definitions = readdirSync(join(root, "operations"))
  .filter((name) => name.endsWith(".graphql"))
  .flatMap((name) => parse(readFileSync(join(root, "operations", name), "utf8")).definitions);
const fragments = new Map(definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((d) => [d.name.value, d]));
const operations = definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);

/** An operation with every fragment it uses, transitively: the document a client sends. */
function documentOf(operation: DefinitionNode) {
  const used = new Map<string, FragmentDefinitionNode>();
  const collect = (node: DefinitionNode) =>
    visit(node, {
      FragmentSpread(spread) {
        const fragment = fragments.get(spread.name.value);
        if (fragment && !used.has(fragment.name.value)) {
          used.set(fragment.name.value, fragment);
          collect(fragment);
        }
      },
    });
  collect(operation);
  return { kind: Kind.DOCUMENT, definitions: [operation, ...used.values()] } as const;
}

const sha256Hex = (text: string) => createHash("sha256").update(text).digest("hex");

describe("persisted operations", () => {
  it("covers the API the frontend uses: queries, mutations and the jobProgress subscription", () => {
    const names = operations.map((o) => o.name?.value);
    expect(names).toEqual(expect.arrayContaining(["Login", "Me", "Projects", "ProjectStats", "DataSources", "Users", "AuditLog", "RuleSets", "DefaultRules", "SaveRuleSet", "StartReconciliation", "ReconciliationJob", "JobMatches", "JobUnmatched", "JobDiscrepancies", "DataSourceUploads", "JobProgress"]));
    expect(new Set(names).size).toBe(names.length);
    expect(operations.every((o) => o.name)).toBe(true);
  });

  it.each(operations.map((o) => [o.name!.value, o] as const))("%s is in the manifest under the sha256 hex of its printed text", (_name, operation) => {
    const text = printExecutableGraphQLDocument(documentOf(operation));
    const hash = sha256Hex(text);
    expect(hash).toMatch(/^[0-9a-f]{64}$/); // bare hex: what APQ's sha256Hash and documentId carry
    expect(manifest.get(hash)).toBe(text);
  });

  it("holds nothing but those operations", () => {
    const hashes = new Set(operations.map((o) => sha256Hex(printExecutableGraphQLDocument(documentOf(o)))));
    expect([...manifest.keys()].filter((hash) => !hashes.has(hash))).toEqual([]);
  });

  it("keeps every manifest operation valid and within the server's operation limits", () => {
    const armor = operationArmor({ blockFieldSuggestion: false });
    for (const text of manifest.values()) {
      // Tokens are counted by armor's parser hook, not a validation rule: parse with the same limit.
      const document = parse(text, { maxTokens: OPERATION_LIMITS.tokens });
      expect(validate(schema, document, [...specifiedRules, ...armor.validationRules]).map((e) => e.message), text.slice(0, 60)).toEqual([]);
    }
  });
});

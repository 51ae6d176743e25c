/**
 * Apollo plugin that refuses text PostgreSQL cannot store, wherever a request carries it: a NUL character (U+0000,
 * refused by `text` and `jsonb` alike) or a lone UTF-16 surrogate (not Unicode: it would be stored as U+FFFD, the
 * value silently changed). Checked once per operation, before any resolver runs, in the variables and in the
 * document's string literals, so every field of every operation is covered — not only those whose service
 * validates its input — and the answer is BAD_USER_INPUT naming where the text is (`$input.name`, or the
 * argument path of a literal: `input.name`), never an internal error from the database.
 */
import type { ApolloServerPlugin } from "@apollo/server";
import { GraphQLError, Kind, visit, type ASTNode, type DocumentNode } from "graphql";
import type { GraphQLContext } from "./context.js";
import { unstorableText } from "./validate.js";

/** The first unstorable string in a variable's value: its path (`$input.lines[2]`) and why; object keys too. */
function inValue(value: unknown, path: string): { field: string; reason: string } | null {
  if (typeof value === "string") {
    const reason = unstorableText(value);
    return reason ? { field: path, reason } : null;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = inValue(value[i], `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  // Plain objects only, as JSON gives them: an upload's variable is a class instance of the multipart parser's.
  if (value !== null && typeof value === "object" && [Object.prototype, null].includes(Object.getPrototypeOf(value))) {
    for (const [key, item] of Object.entries(value)) {
      const keyReason = unstorableText(key);
      if (keyReason) return { field: `${path}.${key.replace(/[\u0000\ud800-\udfff]/g, "?")}`, reason: `has a key that ${keyReason}` };
      const found = inValue(item, `${path}.${key}`);
      if (found) return found;
    }
  }
  return null;
}

/** Documents already looked at (Apollo hands back the same parsed document for the same text). */
const checkedDocuments = new WeakMap<DocumentNode, { field: string; reason: string } | null>();

/** The first unstorable string literal of a document: the argument path it is at (`input.name`) and why. */
function inDocument(document: DocumentNode): { field: string; reason: string } | null {
  if (checkedDocuments.has(document)) return checkedDocuments.get(document)!;
  let found: { field: string; reason: string } | null = null;
  visit(document, {
    StringValue(node, _key, parent, _path, ancestors) {
      if (found) return;
      const reason = unstorableText(node.value);
      if (!reason) return;
      // The ancestors leave out the parent (the ObjectField or Argument holding the string).
      const chain = [...ancestors, parent] as readonly (ASTNode | readonly ASTNode[] | undefined)[];
      const names = chain.flatMap((ancestor) =>
        ancestor && !Array.isArray(ancestor) && ((ancestor as ASTNode).kind === Kind.ARGUMENT || (ancestor as ASTNode).kind === Kind.OBJECT_FIELD)
          ? [(ancestor as { name: { value: string } }).name.value]
          : [],
      );
      found = { field: names.join(".") || "(document)", reason };
    },
  });
  checkedDocuments.set(document, found);
  return found;
}

export function textInputPlugin(): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document }) {
          let found: { field: string; reason: string } | null = null;
          for (const [name, value] of Object.entries(request.variables ?? {})) {
            found = inValue(value, `$${name}`);
            if (found) break;
          }
          found ??= inDocument(document);
          if (found) {
            throw new GraphQLError(`${found.field}: ${found.reason}`, {
              extensions: { code: "BAD_USER_INPUT", field: found.field, http: { status: 400 } },
            });
          }
        },
      };
    },
  };
}

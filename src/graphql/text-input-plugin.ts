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

/** A place in a variable's value: the value, and how it was reached (its path is spelled only when needed). */
interface Place {
  value: unknown;
  parent: Place | null;
  /** `$name` at the root, `[2]` or `.key` below. */
  step: string;
}

const pathOf = (place: Place): string => {
  const steps: string[] = [];
  for (let at: Place | null = place; at; at = at.parent) steps.push(at.step);
  return steps.reverse().join("");
};

/**
 * The first unstorable string in a variable's value: its path (`$input.lines[2]`) and why; object keys too.
 * Walked with a stack of its own, not by recursion: a variable may nest arrays thousands deep within the body limit.
 */
function inValue(value: unknown, name: string): { field: string; reason: string } | null {
  const stack: Place[] = [{ value, parent: null, step: `$${name}` }];
  while (stack.length) {
    const place = stack.pop()!;
    const current = place.value;
    if (typeof current === "string") {
      const reason = unstorableText(current);
      if (reason) return { field: pathOf(place), reason };
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) stack.push({ value: current[i], parent: place, step: `[${i}]` });
    } else if (current !== null && typeof current === "object" && [Object.prototype, null].includes(Object.getPrototypeOf(current))) {
      // Plain objects only, as JSON gives them: an upload's variable is a class instance of the multipart parser's.
      const entries = Object.entries(current);
      for (const [key] of entries) {
        const keyReason = unstorableText(key);
        if (keyReason) return { field: `${pathOf(place)}.${key.replace(/[\u0000\ud800-\udfff]/g, "?")}`, reason: `has a key that ${keyReason}` };
      }
      for (let i = entries.length - 1; i >= 0; i--) stack.push({ value: entries[i]![1], parent: place, step: `.${entries[i]![0]}` });
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
            found = inValue(value, name);
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

/**
 * Apollo plugin that refuses input PostgreSQL cannot store as sent, wherever a request carries it: a NUL character
 * (U+0000, refused by `text` and `jsonb` alike), a lone UTF-16 surrogate (not Unicode: it would be stored as
 * U+FFFD, the value silently changed), and a JSON value nested more than MAX_JSON_DEPTH arrays and objects deep
 * (storing it overflows the stack: Prisma serializes JSON recursively). Checked once per operation, before any
 * resolver runs, in the variables and in the document's literals, so every field of every operation is covered —
 * not only those whose service validates its input — and the answer is BAD_USER_INPUT naming where the problem is
 * (`$input.name`, or the argument path of a literal: `input.name`; for a JSON value nested too deep, the value:
 * `$input.settings`), never an internal error from the database.
 */
import type { ApolloServerPlugin } from "@apollo/server";
import {
  BREAK,
  getNullableType,
  GraphQLError,
  isInputObjectType,
  isInputType,
  isListType,
  isScalarType,
  Kind,
  TypeInfo,
  typeFromAST,
  visit,
  visitWithTypeInfo,
  type ASTNode,
  type DocumentNode,
  type GraphQLInputType,
  type GraphQLSchema,
  type ListValueNode,
  type ObjectValueNode,
} from "graphql";
import type { GraphQLContext } from "./context.js";
import { unstorableText } from "./validate.js";

/** Most arrays and objects a JSON value may nest, itself included: far beyond any settings, mapping or rules. */
export const MAX_JSON_DEPTH = 64;

const TOO_DEEP = `is nested more than ${MAX_JSON_DEPTH} arrays and objects deep, the most a JSON value may be`;

/** What is wrong, and where. */
interface Problem {
  field: string;
  reason: string;
}

/** A place in a variable's value: the value, and how it was reached (its path is spelled only when needed). */
interface Place {
  value: unknown;
  parent: Place | null;
  /** `$name` at the root, `[2]` or `.key` below. */
  step: string;
  /** The type the schema expects here, while it is known (not inside a JSON value). */
  type?: GraphQLInputType;
  /** Inside a JSON value: the place of its root, and how many of its arrays and objects enclose this place. */
  json?: { root: Place; depth: number };
}

const pathOf = (place: Place): string => {
  const steps: string[] = [];
  for (let at: Place | null = place; at; at = at.parent) steps.push(at.step);
  return steps.reverse().join("");
};

const isJson = (type: GraphQLInputType | null | undefined): boolean => {
  const nullable = type && getNullableType(type);
  return isScalarType(nullable) && nullable.name === "JSON";
};

/** The type expected of an item (`key` null) or a field of a value of `type`, if known. */
function memberType(type: GraphQLInputType | undefined, key: string | null): GraphQLInputType | undefined {
  const nullable = type && getNullableType(type);
  // A list may be given one item instead of a list: its fields are the item type's.
  if (isListType(nullable)) return key === null ? nullable.ofType : memberType(nullable.ofType, key);
  return key !== null && isInputObjectType(nullable) ? nullable.getFields()[key]?.type : undefined;
}

/**
 * The first problem in a variable's value of type `type`: an unstorable string, object keys too (its path,
 * `$input.lines[2]`), or a JSON value nested too deep (the JSON value's path, `$input.settings`). Walked with a
 * stack of its own, not by recursion: a variable may nest arrays thousands deep within the body limit.
 */
function inValue(value: unknown, name: string, type: GraphQLInputType | undefined): Problem | null {
  const stack: Place[] = [{ value, parent: null, step: `$${name}`, type }];
  while (stack.length) {
    const place = stack.pop()!;
    const current = place.value;
    let members: [step: string, value: unknown, key: string | null][] | undefined;
    if (typeof current === "string") {
      const reason = unstorableText(current);
      if (reason) return { field: pathOf(place), reason };
    } else if (Array.isArray(current)) {
      members = current.map((item, i) => [`[${i}]`, item, null]);
    } else if (current !== null && typeof current === "object" && [Object.prototype, null].includes(Object.getPrototypeOf(current))) {
      // Plain objects only, as JSON gives them: an upload's variable is a class instance of the multipart parser's.
      const entries = Object.entries(current);
      for (const [key] of entries) {
        const keyReason = unstorableText(key);
        if (keyReason) return { field: `${pathOf(place)}.${key.replace(/[\u0000\ud800-\udfff]/g, "?")}`, reason: `has a key that ${keyReason}` };
      }
      members = entries.map(([key, item]) => [`.${key}`, item, key]);
    }
    if (!members) continue;
    const json = place.json ?? (isJson(place.type) ? { root: place, depth: 0 } : undefined);
    if (json && json.depth >= MAX_JSON_DEPTH) return { field: pathOf(json.root), reason: TOO_DEEP };
    const inner = json && { root: json.root, depth: json.depth + 1 };
    for (let i = members.length - 1; i >= 0; i--) {
      const [step, item, key] = members[i]!;
      stack.push({ value: item, parent: place, step, type: inner ? undefined : memberType(place.type, key), json: inner });
    }
  }
  return null;
}

/** The argument path (`input.name`) of a literal whose parent and ancestors a visitor was given. */
function argumentPath(parent: unknown, ancestors: readonly unknown[]): string {
  // The ancestors leave out the parent (the ObjectField or Argument holding the value).
  const chain = [...ancestors, parent] as readonly (ASTNode | readonly ASTNode[] | undefined)[];
  const names = chain.flatMap((ancestor) =>
    ancestor && !Array.isArray(ancestor) && ((ancestor as ASTNode).kind === Kind.ARGUMENT || (ancestor as ASTNode).kind === Kind.OBJECT_FIELD)
      ? [(ancestor as { name: { value: string } }).name.value]
      : [],
  );
  return names.join(".") || "(document)";
}

/** Documents already looked at (Apollo hands back the same parsed document for the same text). */
const checkedDocuments = new WeakMap<DocumentNode, Problem | null>();

/**
 * The first problem among a document's literals: an unstorable string literal (its argument path, `input.name`)
 * or a JSON literal nested too deep (the JSON value's path, `input.settings`). `visit` walks with a stack of its
 * own; the schema's types say which literals are JSON values.
 */
function inDocument(document: DocumentNode, schema: GraphQLSchema): Problem | null {
  if (checkedDocuments.has(document)) return checkedDocuments.get(document)!;
  let found: Problem | null = null;
  const typeInfo = new TypeInfo(schema);
  /** The JSON literal the walk is in: its path, and how many of its lists and objects the walk is in. */
  let json: { field: string; depth: number } | null = null;
  const composite = {
    enter(node: ListValueNode | ObjectValueNode, _key: unknown, parent: unknown, _path: unknown, ancestors: readonly unknown[]) {
      // TypeInfo has already moved into a list's items: the list's own type is the one before.
      const type = node.kind === Kind.LIST ? typeInfo.getParentInputType() : typeInfo.getInputType();
      if (!json && isJson(type)) json = { field: argumentPath(parent, ancestors), depth: 0 };
      if (json && ++json.depth > MAX_JSON_DEPTH) {
        found = { field: json.field, reason: TOO_DEEP };
        return BREAK;
      }
    },
    leave() {
      if (json && --json.depth === 0) json = null;
    },
  };
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      StringValue(node, _key, parent, _path, ancestors) {
        const reason = unstorableText(node.value);
        if (!reason) return;
        found = { field: argumentPath(parent, ancestors), reason };
        return BREAK;
      },
      ListValue: composite,
      ObjectValue: composite,
    }),
  );
  checkedDocuments.set(document, found);
  return found;
}

export function textInputPlugin(): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document, operation, schema }) {
          const declared = new Map(
            operation?.variableDefinitions?.map((definition) => {
              const type = typeFromAST(schema, definition.type);
              return [definition.variable.name.value, isInputType(type) ? type : undefined];
            }),
          );
          let found: Problem | null = null;
          for (const [name, value] of Object.entries(request.variables ?? {})) {
            found = inValue(value, name, declared.get(name));
            if (found) break;
          }
          found ??= inDocument(document, schema);
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

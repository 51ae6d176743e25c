/**
 * Errors clients are meant to see, each with a stable `extensions.code`. Anything else thrown is a bug: it is
 * logged with the request id and masked (see format-error.ts).
 */
import { GraphQLError } from "graphql";

/** Input the user can fix; names the offending field (dotted path, e.g. `input.email`). */
export class BadUserInputError extends GraphQLError {
  constructor(field: string, message: string) {
    super(`${field}: ${message}`, { extensions: { code: "BAD_USER_INPUT", field } });
  }
}

/** The thing does not exist, or the viewer may not see it (the two are deliberately indistinguishable). */
export class NotFoundError extends GraphQLError {
  constructor(what: string) {
    super(`${what} not found`, { extensions: { code: "NOT_FOUND" } });
  }
}

/** The viewer can see the thing but may not do this to it. */
export class ForbiddenError extends GraphQLError {
  constructor(message = "You are not allowed to do this") {
    super(message, { extensions: { code: "FORBIDDEN" } });
  }
}

/** No valid credentials where they are required. */
export class UnauthenticatedError extends GraphQLError {
  constructor(message = "Sign in first: send Authorization: Bearer <token> (see the login mutation)") {
    super(message, { extensions: { code: "UNAUTHENTICATED" } });
  }
}

/** The same name or email exists already. */
export class ConflictError extends GraphQLError {
  constructor(field: string, message: string) {
    super(`${field}: ${message}`, { extensions: { code: "BAD_USER_INPUT", field, reason: "CONFLICT" } });
  }
}

export const errorCodes = new Set(["BAD_USER_INPUT", "NOT_FOUND", "FORBIDDEN", "UNAUTHENTICATED"]);

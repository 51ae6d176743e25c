/**
 * Users: who may see whom, and account changes. Responsible for authorization and input checks; talks to the
 * user repository and records every change in the audit log.
 */
import type { Database } from "../../db/database.js";
import type { Role } from "../../generated/prisma/enums.js";
import { MIN_PASSWORD_LENGTH, hashPassword } from "../../auth/passwords.js";
import { policy, requireViewer, type Viewer } from "../../auth/policy.js";
import { BadUserInputError, ConflictError, ForbiddenError, NotFoundError } from "../../graphql/errors.js";
import { pageRequest, toConnection } from "../../graphql/pagination.js";
import { isId, requireEmail, requireId, requireText } from "../../graphql/validate.js";
import { isUniqueViolation } from "../../db/errors.js";
import type { AuditService } from "../audit/audit-service.js";
import { userScope } from "../scopes.js";
import type { UserFilter, UserRepository } from "./user-repository.js";
import type { User } from "../../graphql/models.js";

export interface CreateUserInput {
  email: string;
  name: string;
  password: string;
  role?: Role | null;
}

export interface UpdateUserInput {
  name?: string | null;
  email?: string | null;
  password?: string | null;
  currentPassword?: string | null;
  role?: Role | null;
  isActive?: boolean | null;
}

function requirePassword(password: string, field: string): string {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new BadUserInputError(field, `must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (password.length > 1024) throw new BadUserInputError(field, "must be at most 1024 characters");
  return password;
}

/** What the audit log keeps of a user (never the password hash). */
function snapshot(user: User) {
  return { email: user.email, name: user.name, role: user.role, isActive: user.isActive };
}

export function createUserService(deps: {
  transaction: Database["transaction"];
  users: UserRepository;
  audit: AuditService;
  /** Checks a signed-in user's current password (auth-service.ts: failures count as failed sign-ins). */
  passwords: { confirmPassword(email: string, password: string): Promise<boolean> };
}) {
  const { transaction, users, audit, passwords } = deps;

  async function withUniqueEmail<T>(field: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if (isUniqueViolation(error)) throw new ConflictError(field, "a user with this email exists already");
      throw error;
    }
  }

  return {
    async me(viewer: Viewer | null): Promise<User | null> {
      return viewer ? users.findById(viewer.id) : null;
    },

    async list(
      viewer: Viewer | null,
      args: { first?: number | null; after?: string | null; filter?: UserFilter | null },
      withTotal: boolean,
    ) {
      const scope = userScope(requireViewer(viewer));
      const page = pageRequest(args);
      const filter = args.filter ?? {};
      const { rows, total } = await users.list(scope, filter, page, withTotal);
      return toConnection(rows, page, () => users.count(scope, filter), total);
    },

    async get(viewer: Viewer | null, id: string): Promise<User | null> {
      if (!isId(id)) return null;
      return users.findVisible(userScope(requireViewer(viewer)), id);
    },

    async create(viewer: Viewer | null, input: CreateUserInput): Promise<User> {
      if (!policy.manageUsers(requireViewer(viewer))) throw new ForbiddenError("Only an ADMIN can create users");
      const data = {
        email: requireEmail(input.email, "input.email"),
        name: requireText(input.name, "input.name"),
        role: input.role ?? "ANALYST",
        passwordHash: await hashPassword(requirePassword(input.password, "input.password")),
      };
      return withUniqueEmail("input.email", () =>
        transaction(async (tx) => {
          const user = await users.create(data, tx);
          await audit.record(tx, {
            userId: viewer!.id,
            projectId: null,
            action: "user.create",
            resourceType: "User",
            resourceId: user.id,
            after: snapshot(user),
          });
          return user;
        }),
      );
    },

    async update(viewer: Viewer | null, rawId: string, input: UpdateUserInput): Promise<User> {
      const actor = requireViewer(viewer);
      const id = requireId(rawId, "id");
      const isAdmin = policy.manageUsers(actor);
      const target = isAdmin || id === actor.id ? await users.findById(id) : null;
      if (!target) throw new NotFoundError("User");
      if (!isAdmin) {
        const adminOnly = (["email", "role", "isActive"] as const).find((key) => input[key] !== undefined && input[key] !== null);
        if (adminOnly) throw new ForbiddenError(`Only an ADMIN can change ${adminOnly}`);
      }
      if (id === actor.id && (input.isActive === false || (input.role && input.role !== actor.role))) {
        throw new BadUserInputError(input.isActive === false ? "input.isActive" : "input.role", "you cannot demote or deactivate yourself");
      }
      const data: Record<string, unknown> = {};
      if (input.name != null) data.name = requireText(input.name, "input.name");
      if (input.email != null) data.email = requireEmail(input.email, "input.email");
      if (input.role != null) data.role = input.role;
      if (input.isActive != null) data.isActive = input.isActive;
      if (input.password != null) {
        const password = requirePassword(input.password, "input.password");
        // Your own password only with the current one: a token alone (left signed in, or stolen) must not be enough
        // to lock its owner out.
        if (id === actor.id) {
          if (!input.currentPassword) throw new BadUserInputError("input.currentPassword", "is required to change your own password");
          if (!(await passwords.confirmPassword(target.email, input.currentPassword))) {
            throw new BadUserInputError("input.currentPassword", "is not your current password");
          }
        }
        data.passwordHash = await hashPassword(password);
        // Every token issued so far stops working (tokens.ts): a new password ends the sessions the old one opened.
        data.tokenVersion = { increment: 1 };
      }
      return withUniqueEmail("input.email", () =>
        transaction(async (tx) => {
          const user = await users.update(id, data, tx);
          await audit.record(tx, {
            userId: actor.id,
            projectId: null,
            action: input.password != null ? "user.update+password" : "user.update",
            resourceType: "User",
            resourceId: id,
            before: snapshot(target),
            after: snapshot(user),
          });
          return user;
        }),
      );
    },

    async deactivate(viewer: Viewer | null, rawId: string): Promise<User> {
      const actor = requireViewer(viewer);
      if (!policy.manageUsers(actor)) throw new ForbiddenError("Only an ADMIN can deactivate users");
      const id = requireId(rawId, "id");
      if (id === actor.id) throw new BadUserInputError("id", "you cannot deactivate yourself");
      const target = await users.findById(id);
      if (!target) throw new NotFoundError("User");
      return transaction(async (tx) => {
        const user = await users.update(id, { isActive: false }, tx);
        await audit.record(tx, {
          userId: actor.id,
          projectId: null,
          action: "user.deactivate",
          resourceType: "User",
          resourceId: id,
          before: snapshot(target),
          after: snapshot(user),
        });
        return user;
      });
    },
  };
}

export type UserService = ReturnType<typeof createUserService>;

/**
 * Sign-in and viewer resolution. Responsible for turning credentials into a token and a bearer token into the
 * current, active user — re-read on every request so deactivation and role changes apply at once.
 */
import type { DbClient } from "../../db/database.js";
import type { Viewer } from "../../auth/policy.js";
import { verifyPassword } from "../../auth/passwords.js";
import type { TokenIssuer } from "../../auth/tokens.js";
import { GraphQLError } from "graphql";
import type { UserRepository } from "../users/user-repository.js";

export function createAuthService(deps: { users: UserRepository; tokens: TokenIssuer; prisma: DbClient }) {
  const { users, tokens, prisma } = deps;
  return {
    async login(email: string, password: string) {
      const credentials = await users.findCredentials(email.trim().toLowerCase());
      const valid = await verifyPassword(credentials?.passwordHash, password);
      if (!credentials || !valid || !credentials.isActive) {
        throw new GraphQLError("Invalid email or password", { extensions: { code: "UNAUTHENTICATED" } });
      }
      const user = await prisma.user.update({ where: { id: credentials.id }, data: { lastLoginAt: new Date() } });
      const { token, expiresAt } = await tokens.issue(user.id);
      return { token, expiresAt, user };
    },

    /** The active user named by a bearer token, or null (no token, bad token, unknown or deactivated user). */
    async viewerFromToken(token: string | undefined): Promise<Viewer | null> {
      if (!token) return null;
      const userId = await tokens.verify(token);
      if (!userId) return null;
      const user = await users.findById(userId);
      if (!user?.isActive) return null;
      return { id: user.id, email: user.email, name: user.name, role: user.role };
    },
  };
}

export type AuthService = ReturnType<typeof createAuthService>;

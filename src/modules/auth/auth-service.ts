/**
 * Sign-in and viewer resolution. Responsible for turning credentials into a token (slowing down guessing) and a
 * bearer token into the current, active user — read from the database unless the response cache remembers it
 * (it forgets a user the moment their row changes, so deactivation, role and password changes apply at once).
 */
import type { DbClient } from "../../db/database.js";
import type { Viewer } from "../../auth/policy.js";
import { verifyPassword } from "../../auth/passwords.js";
import type { TokenIssuer } from "../../auth/tokens.js";
import { GraphQLError } from "graphql";
import type { UserRepository } from "../users/user-repository.js";
import type { LoginThrottle } from "./login-throttle.js";

/** Refusal while an account or address is locked out by failed attempts. */
function tooManyAttempts(wait: number): GraphQLError {
  return new GraphQLError(`Too many failed sign-ins; try again in ${wait} s`, {
    extensions: { code: "TOO_MANY_ATTEMPTS", retryAfterSeconds: wait },
  });
}

export function createAuthService(deps: { users: UserRepository; tokens: TokenIssuer; prisma: DbClient; throttle: LoginThrottle }) {
  const { users, tokens, prisma, throttle } = deps;

  /**
   * The user as a viewer, re-read now; null when unknown or deactivated, or — with `tokenVersion` — when the
   * user's tokens have moved on since (their password changed: every earlier session ends).
   */
  async function viewerById(userId: string, tokenVersion?: number): Promise<Viewer | null> {
    const user = await users.findById(userId);
    if (!user?.isActive || (tokenVersion !== undefined && user.tokenVersion !== tokenVersion)) return null;
    return { id: user.id, email: user.email, name: user.name, role: user.role };
  }

  return {
    /** Signs in; repeated failures for an account or from an address are slowed down (login-throttle.ts). */
    async login(email: string, password: string, clientAddress: string | null = null) {
      const account = `email:${email.trim().toLowerCase()}`;
      const keys = clientAddress ? [account, `address:${clientAddress}`] : [account];
      const wait = await throttle.retryAfterSeconds(keys);
      if (wait > 0) throw tooManyAttempts(wait);
      const credentials = await users.findCredentials(email.trim().toLowerCase());
      const valid = await verifyPassword(credentials?.passwordHash, password);
      if (!credentials || !valid || !credentials.isActive) {
        await throttle.failed(keys);
        throw new GraphQLError("Invalid email or password", { extensions: { code: "UNAUTHENTICATED" } });
      }
      await throttle.succeeded(account);
      const user = await prisma.user.update({ where: { id: credentials.id }, data: { lastLoginAt: new Date() } });
      const { token, expiresAt } = await tokens.issue(user.id, user.tokenVersion);
      return { token, expiresAt, user };
    },

    /**
     * Whether `password` is the current password of the account `email` (a signed-in user proving it before
     * changing it). A wrong one counts against the account like a failed sign-in, so a stolen token cannot be used
     * to guess the password faster than signing in could.
     */
    async confirmPassword(email: string, password: string): Promise<boolean> {
      const account = `email:${email.trim().toLowerCase()}`;
      const wait = await throttle.retryAfterSeconds([account]);
      if (wait > 0) throw tooManyAttempts(wait);
      const credentials = await users.findCredentials(email.trim().toLowerCase());
      if (await verifyPassword(credentials?.passwordHash, password)) return true;
      await throttle.failed([account]);
      return false;
    },

    /** The active user named by a bearer token, or null (no token, bad token, unknown or deactivated user). */
    async viewerFromToken(token: string | undefined): Promise<Viewer | null> {
      if (!token) return null;
      const subject = await tokens.verify(token);
      return subject ? viewerById(subject.userId, subject.version) : null;
    },

    /** The viewer a signed export link names, as they are now (null: unknown or deactivated). */
    viewerById,
  };
}

export type AuthService = ReturnType<typeof createAuthService>;

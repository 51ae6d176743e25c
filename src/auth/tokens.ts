/**
 * Bearer access tokens: HS256 JWTs (jose) naming the user and the user's token version; the user is re-read on
 * every request, and a token whose version is no longer the user's (the password changed since) signs nobody in.
 */
import { SignJWT, jwtVerify } from "jose";

/** Who a valid token names: the user, and the token version it was issued under. */
export interface TokenSubject {
  userId: string;
  version: number;
}

export interface TokenIssuer {
  issue(userId: string, version: number): Promise<{ token: string; expiresAt: Date }>;
  /** Whom a valid token names, or null for a missing, malformed, expired or forged one. */
  verify(token: string): Promise<TokenSubject | null>;
}

const ISSUER = "recon";

export function createTokenIssuer(secret: string, ttlSeconds: number): TokenIssuer {
  const key = new TextEncoder().encode(secret);
  return {
    async issue(userId, version) {
      const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
      const token = await new SignJWT({ ver: version })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject(userId)
        .setIssuer(ISSUER)
        .setIssuedAt()
        .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
        .sign(key);
      return { token, expiresAt };
    },
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, key, { issuer: ISSUER, algorithms: ["HS256"] });
        if (typeof payload.sub !== "string") return null;
        // Tokens issued before versions existed name none: they belong to version 0, every user's first.
        const version = payload.ver === undefined ? 0 : payload.ver;
        return Number.isSafeInteger(version) ? { userId: payload.sub, version: version as number } : null;
      } catch {
        return null;
      }
    },
  };
}

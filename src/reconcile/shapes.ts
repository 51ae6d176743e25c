/**
 * Keeps one instance of an engine class alive for the life of the process, so that V8 keeps the class's object
 * shape between blocks.
 *
 * V8 gives a class's instances their shape (a "map") by transitions, one per property the constructor adds, and
 * holds transitions weakly. Every object the engine makes dies with its block, so the shapes died too, and with
 * them the optimized code of every function specialized to them; the next block's objects got new shapes and the
 * code was compiled again (measured on a job's blocks: about a second of compiler threads per block, as much CPU
 * as the matching itself). An object literal's shape needs no keeping: V8 keeps it with the literal's site. Objects
 * grown after creation (a spread plus one more property, `Object.freeze`) have the class's problem and no class to
 * keep an instance of, so the engine does not make them.
 */
const kept: object[] = [];

/** Keeps `instance` (an instance built like every other of its class) alive; returns it. */
export function keepShape<T extends object>(instance: T): T {
  kept.push(instance);
  return instance;
}

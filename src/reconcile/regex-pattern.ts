/**
 * Checks and runs the user-supplied patterns of `regex` text comparators. A pattern comes from a rule set that any
 * project member may save, so it must not be able to stall the engine. Rather than guess which shapes backtrack
 * catastrophically (`(a+)+`, but also `a*a*a*b`, and many more), patterns run on V8's linear-time RegExp engine
 * (the `l` flag): an automaton simulation whose time is linear in the input (times the pattern's size), whatever
 * the pattern. It cannot run backreferences, lookarounds or large repetition counts, so those are refused when a
 * rule set is saved. Patterns are short and inputs are capped in length, which bounds every match.
 */
import { setFlagsFromString } from "node:v8";

/** Longest pattern accepted. */
export const MAX_PATTERN_LENGTH = 200;
/** Longest input a pattern is applied to (longer values are cut). */
export const MAX_PATTERN_INPUT = 500;

// The linear engine is behind a V8 flag. V8 flags are process-wide (worker threads included) and this one only makes
// the `l` flag valid (no other RegExp changes engine); it must be on before the first `l` RegExp is built, which
// only this module builds.
setFlagsFromString("--enable-experimental-regexp-engine");
try {
  new RegExp("", "l");
} catch {
  throw new Error("recon needs V8's linear-time RegExp engine (--enable-experimental-regexp-engine), which this Node.js does not provide");
}

/**
 * Escapes whose meaning needs Unicode mode (`u`), which the linear engine cannot run: without it `\p{L}` would
 * silently match the text "p{L}" and `\u{41}` 41 "u"s; characters beyond U+FFFF (surrogates, literal or escaped)
 * would be two code units. Tested on the pattern without its escaped backslashes.
 */
const UNICODE_ONLY = /\\[pP]|\\u\{|\\u[dD][89a-fA-F]|[\ud800-\udfff]/;

/** Why `pattern` is refused, or null when it is acceptable. */
export function patternProblem(pattern: string): string | null {
  if (pattern.length === 0) return "must not be empty";
  if (pattern.length > MAX_PATTERN_LENGTH) return `must be at most ${MAX_PATTERN_LENGTH} characters`;
  try {
    // Unicode mode's stricter syntax: a mistyped escape is an error rather than a literal character.
    new RegExp(pattern, "u");
  } catch (error) {
    return `does not compile: ${(error as Error).message}`;
  }
  if (UNICODE_ONLY.test(pattern.replaceAll("\\\\", ""))) return "must not use \\p{…}, \\u{…} or characters beyond U+FFFF (patterns run without Unicode mode)";
  let compiled: RegExp;
  try {
    compiled = new RegExp(pattern, "l");
  } catch {
    return "cannot run in linear time: backreferences, lookahead, lookbehind and repetition counts above 16 (such as {6,20}; {6,} is fine) are not supported";
  }
  const groups = new RegExp(`${compiled.source}|`, "l").exec("")!.length - 1;
  return groups === 1 ? null : `must have exactly one capture group, has ${groups}`;
}

/**
 * Compiles an already validated pattern, for the linear-time engine, into an extractor: the first capture group of
 * the first match in the (length-capped) value, or "" when there is none.
 */
export function compilePattern(pattern: string): (value: string) => string {
  const regex = new RegExp(pattern, "l");
  return (value) => {
    const match = regex.exec(value.length > MAX_PATTERN_INPUT ? value.slice(0, MAX_PATTERN_INPUT) : value);
    return match?.[1] ?? "";
  };
}

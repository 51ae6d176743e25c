/**
 * The regex comparator's patterns run on V8's linear-time engine: a pattern that would backtrack catastrophically
 * (an auditor's `(a*a*a*a*a*a*b)` took 8 s on 80 characters and hung a job on 500) finishes, and what that engine
 * cannot run is refused when the rule set is saved, with the reason.
 */
import { describe, expect, it } from "vitest";
import { compilePattern, MAX_PATTERN_INPUT, patternProblem } from "../../src/reconcile/regex-pattern.js";

describe("regex patterns", () => {
  it.each([
    ["the auditor's adjacent stars", "(a*a*a*a*a*a*b)", "a".repeat(5000)],
    ["a nested quantifier", "((?:a+)+b)", "a".repeat(5000)],
    ["a repeated alternation", "((?:a|aa)*b)", "a".repeat(5000)],
    ["repeated words", "(?:\\w+\\s?)*(!)", "ab ".repeat(2000)],
  ])("run %s to the end of a long input, without backtracking", (_, pattern, input) => {
    expect(patternProblem(pattern)).toBeNull();
    // Nothing to capture in the first 500 characters (the cut): the engine scanned them all and gave up.
    expect(compilePattern(pattern)(input)).toBe("");
  });

  it("match on all of the first 500 characters, and nothing after", () => {
    const extract = compilePattern("(a*a*a*a*a*a*b)");
    expect(extract(`${"a".repeat(MAX_PATTERN_INPUT - 1)}b`)).toBe(`${"a".repeat(MAX_PATTERN_INPUT - 1)}b`);
    expect(extract(`${"a".repeat(MAX_PATTERN_INPUT)}b`)).toBe("");
  });

  it.each([
    ["a backreference", "(a)\\1", /^cannot run in linear time/],
    ["a named backreference", "(?<x>a)\\k<x>", /^cannot run in linear time/],
    ["a lookahead", "(?=INV)(\\w+)", /^cannot run in linear time/],
    ["a negative lookahead", "(?!X)(\\w+)", /^cannot run in linear time/],
    ["a lookbehind", "(?<=INV-)(\\d+)", /^cannot run in linear time/],
    ["a repetition count above 16", "([A-Z0-9]{6,20})", /^cannot run in linear time/],
    ["a Unicode property", "(\\p{Lu}+)", /^must not use \\p\{…\}/],
    ["a code point escape", "(\\u{41})", /^must not use \\p\{…\}, \\u\{…\}/],
    ["a character beyond U+FFFF", "(😀+)", /characters beyond U\+FFFF/],
    ["an escaped surrogate", "([\\ud83d\\ude00])", /characters beyond U\+FFFF/],
    ["a mistyped escape", "(\\q)", /^does not compile/],
  ])("refuse %s, saying why", (_, pattern, reason) => {
    expect(patternProblem(pattern)).toMatch(reason);
  });

  it("accept what the linear engine runs: counts up to 16, open counts, named groups, an escaped backslash", () => {
    for (const pattern of ["([A-Z0-9]{6,16})", "([A-Z0-9]{6,})", "(?<invoice>\\d+)", "\\\\p(x)", "^(?:ref|inv)[: ]*(\\w+)\\b"]) {
      expect(patternProblem(pattern)).toBeNull();
    }
    expect(compilePattern("(?<invoice>\\d+)")("INV 0042")).toBe("0042");
    expect(compilePattern("\\\\p(x)")("a\\px")).toBe("x");
    // Inputs beyond U+FFFF are matched as code units, whole when nothing splits them.
    expect(compilePattern("^(\\S+)")("a😀 b")).toBe("a😀");
  });
});

/**
 * Checks and runs the user-supplied patterns of `regex` text comparators. A pattern comes from a rule set that any
 * project member may save, so it must not be able to stall the engine: patterns are short, compile, have exactly one
 * capture group, no backreferences and no quantified group that itself contains a quantifier or an alternation
 * (the shapes behind catastrophic backtracking, such as `(a+)+` or `(a|a)*`). Inputs are also capped in length.
 */

/** Longest pattern accepted. */
export const MAX_PATTERN_LENGTH = 200;
/** Longest input a pattern is applied to (longer values are cut). */
export const MAX_PATTERN_INPUT = 500;

/** Why `pattern` is refused, or null when it is acceptable. */
export function patternProblem(pattern: string): string | null {
  if (pattern.length === 0) return "must not be empty";
  if (pattern.length > MAX_PATTERN_LENGTH) return `must be at most ${MAX_PATTERN_LENGTH} characters`;
  let compiled: RegExp;
  try {
    compiled = new RegExp(pattern, "u");
  } catch (error) {
    return `does not compile: ${(error as Error).message}`;
  }
  const nesting = nestingProblem(pattern);
  if (nesting) return nesting;
  const groups = new RegExp(`${compiled.source}|`, "u").exec("")!.length - 1;
  return groups === 1 ? null : `must have exactly one capture group, has ${groups}`;
}

/** Scans the pattern's structure for backreferences and quantified groups holding quantifiers or alternations. */
function nestingProblem(pattern: string): string | null {
  // For each open group: whether it contains a quantifier or an alternation.
  const open: boolean[] = [];
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === "\\") {
      const next = pattern[i + 1] ?? "";
      if (!inClass && (/[1-9]/.test(next) || next === "k")) return "must not use backreferences";
      i++;
      continue;
    }
    if (inClass) {
      if (char === "]") inClass = false;
      continue;
    }
    if (char === "[") inClass = true;
    else if (char === "(") open.push(false);
    else if (char === "|" && open.length > 0) open[open.length - 1] = true;
    else if (char === ")") {
      const risky = open.pop() ?? false;
      const quantified = isQuantifier(pattern, i + 1);
      if (risky && quantified) return "must not repeat a group that contains a quantifier or alternation (catastrophic backtracking)";
      if ((risky || quantified) && open.length > 0) open[open.length - 1] = true;
    } else if (isQuantifier(pattern, i) && open.length > 0) open[open.length - 1] = true;
  }
  return null;
}

/** Whether an unbounded or counted repetition (`*`, `+`, `{n,}`, `{n,m}`) starts at `index`; `?` is harmless. */
function isQuantifier(pattern: string, index: number): boolean {
  const char = pattern[index];
  return char === "*" || char === "+" || (char === "{" && /^\{\d+(,\d*)?\}/.test(pattern.slice(index)));
}

/**
 * Compiles an already validated pattern into an extractor: the first capture group of the first match in the
 * (length-capped) value, or "" when there is none.
 */
export function compilePattern(pattern: string): (value: string) => string {
  const regex = new RegExp(pattern, "u");
  return (value) => {
    const match = regex.exec(value.length > MAX_PATTERN_INPUT ? value.slice(0, MAX_PATTERN_INPUT) : value);
    return match?.[1] ?? "";
  };
}

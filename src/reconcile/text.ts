/**
 * Text normalization and similarity measures for references, descriptions, counterparties and external ids.
 * All measures work on normalized text and return a similarity in 0..1 (1 = identical); empty text is similar to
 * nothing, not even to another empty text, so that missing references never match each other.
 */

/** Longest text (in code points) the quadratic measures look at; longer texts are compared on their first part. */
export const MAX_SIMILARITY_LENGTH = 256;

/**
 * The normalized form used by every non-exact text comparator: Unicode NFKC, case-folded (upper then lower case,
 * which folds "ß" to "ss" and final sigma to sigma), punctuation and symbols removed ("INV-001" → "inv001"),
 * whitespace collapsed to single spaces and trimmed.
 */
export function normalizeText(text: string): string {
  if (text === "") return "";
  return text
    .normalize("NFKC")
    .toUpperCase()
    .toLowerCase()
    .replace(/[\p{P}\p{S}]+/gu, "")
    .replace(/\s+/gu, " ")
    .trim();
}

/** Jaccard similarity of the sets of space-separated tokens of two normalized texts: |A ∩ B| / |A ∪ B|. */
export function tokenSetSimilarity(a: string, b: string): number {
  if (a === "" || b === "") return 0;
  const left = new Set(a.split(" "));
  const right = new Set(b.split(" "));
  let common = 0;
  for (const token of left) if (right.has(token)) common++;
  return common / (left.size + right.size - common);
}

function codePoints(text: string): string[] {
  const points = Array.from(text);
  return points.length > MAX_SIMILARITY_LENGTH ? points.slice(0, MAX_SIMILARITY_LENGTH) : points;
}

/**
 * Jaro-Winkler similarity (prefix scale 0.1, prefix of at most 4) of two normalized texts. Good for typos in
 * names; note that it rewards a common prefix, so "inv1001" and "inv1002" score high (0.94).
 */
export function jaroWinkler(a: string, b: string): number {
  if (a === "" || b === "") return 0;
  if (a === b) return 1;
  const s = codePoints(a);
  const t = codePoints(b);
  const window = Math.max(0, Math.floor(Math.max(s.length, t.length) / 2) - 1);
  const sMatched = new Uint8Array(s.length);
  const tMatched = new Uint8Array(t.length);
  let matches = 0;
  for (let i = 0; i < s.length; i++) {
    const end = Math.min(t.length - 1, i + window);
    for (let j = Math.max(0, i - window); j <= end; j++) {
      if (!tMatched[j] && s[i] === t[j]) {
        sMatched[i] = 1;
        tMatched[j] = 1;
        matches++;
        break;
      }
    }
  }
  if (matches === 0) return 0;
  let transpositions = 0;
  for (let i = 0, j = 0; i < s.length; i++) {
    if (!sMatched[i]) continue;
    while (!tMatched[j]) j++;
    if (s[i] !== t[j]) transpositions++;
    j++;
  }
  const jaro = (matches / s.length + matches / t.length + (matches - transpositions / 2) / matches) / 3;
  let prefix = 0;
  while (prefix < 4 && prefix < s.length && prefix < t.length && s[prefix] === t[prefix]) prefix++;
  return jaro + prefix * 0.1 * (1 - jaro);
}

/** Levenshtein distance turned into a similarity: 1 − distance / length of the longer text (in code points). */
export function levenshteinSimilarity(a: string, b: string): number {
  if (a === "" || b === "") return 0;
  if (a === b) return 1;
  const s = codePoints(a);
  const t = codePoints(b);
  let previous = new Array<number>(t.length + 1);
  let current = new Array<number>(t.length + 1);
  for (let j = 0; j <= t.length; j++) previous[j] = j;
  for (let i = 1; i <= s.length; i++) {
    current[0] = i;
    for (let j = 1; j <= t.length; j++) {
      const substitution = previous[j - 1]! + (s[i - 1] === t[j - 1] ? 0 : 1);
      current[j] = Math.min(substitution, previous[j]! + 1, current[j - 1]! + 1);
    }
    [previous, current] = [current, previous];
  }
  return 1 - previous[t.length]! / Math.max(s.length, t.length);
}

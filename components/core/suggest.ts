/**
 * "Did you mean ...?" for config keys and Vultr ids: the known words within a small Levenshtein
 * distance (fastest-levenshtein) of what the user wrote, compared case-insensitively.
 */
import { distance } from "fastest-levenshtein";

/** Up to `max` of the known words closest to `word`, if within a small edit distance. */
export function similar(word: string, known: readonly string[], max = 3): string[] {
    const w = word.toLowerCase();
    // A third of the word's length, at least 1 and at most 3 edits: "remoteAs" -> "remoteAsn",
    // "regoin" -> "region", but "xyz" is not "sea".
    const limit = Math.min(3, Math.max(1, Math.floor(w.length / 3)));
    const near = known.map((k) => ({ k, d: distance(w, k.toLowerCase()) })).filter((x) => x.d <= limit);
    // Only the closest: "vc2-1c-1gbb" suggests vc2-1c-1gb, not every plan two edits away too.
    const best = Math.min(...near.map((x) => x.d));
    return near.filter((x) => x.d === best).map((x) => x.k).sort().slice(0, max);
}

/** "did you mean X?" / "did you mean X or Y?", or "" when nothing is close. */
export function didYouMean(word: string, known: readonly string[]): string {
    const hits = similar(word, known);
    if (hits.length === 0) return "";
    return `did you mean ${hits.length === 1 ? hits[0] : `${hits.slice(0, -1).join(", ")} or ${hits[hits.length - 1]}`}?`;
}

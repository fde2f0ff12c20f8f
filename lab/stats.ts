/** Small statistics for benchmark and lab figures: min/median/max over repeated runs. */

export interface Summary {
    n: number;
    min: number;
    median: number;
    max: number;
}

export function summarize(samples: number[]): Summary {
    if (samples.length === 0) return { n: 0, min: NaN, median: NaN, max: NaN };
    const s = [...samples].sort((a, b) => a - b);
    const mid = Math.floor(s.length / 2);
    const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
    return { n: s.length, min: s[0], median, max: s[s.length - 1] };
}

/** min/median/max of the runs that produced a figure; undefined when none did. */
export function stats(values: number[]): Summary | undefined {
    return values.length === 0 ? undefined : summarize(values);
}

export function formatSummary(s: Summary, unit: string, digits = 0): string {
    if (s.n === 0) return "n/a";
    const f = (x: number) => x.toFixed(digits);
    return `${f(s.min)} / ${f(s.median)} / ${f(s.max)} ${unit} (n=${s.n})`;
}

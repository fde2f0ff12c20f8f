/**
 * A change the lab makes to a file the stack rendered before it boots it (a path moved into the
 * namespace's directory, a timer widened for this machine), recorded so the report lists every
 * difference between what it ran and what a host would get. Its own file, so that the files
 * that make rewrites (boot.ts, stalls.ts) and the one that reports them (report.ts) need not
 * import each other.
 */
export interface Rewrite {
    host: string;
    file: string;
    what: string;
    from: string;
    to: string;
}

/**
 * One way in which what the lab runs differs from what a host would get: a field of a PoP
 * namespace's layout (a path moved into its directory, a timer widened for this machine) that
 * differs from the deployed layout (lab/layout.ts layoutRewrites), with the files it lands in.
 * The report lists them all. Its own file, so that the file that makes them (layout.ts) and the
 * one that reports them (report.ts) need not import each other.
 */
export interface Rewrite {
    host: string;
    /** The files (or command lines) the field is written into. */
    file: string;
    what: string;
    from: string;
    to: string;
}

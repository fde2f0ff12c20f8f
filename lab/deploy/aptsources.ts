/**
 * This machine's apt sources, read the way apt reads them (one-line `.list` files and deb822
 * `.sources` files), to find the Debian mirror the deploy rehearsal's hosts install from.
 *
 * The mirror is never written into the code: the rehearsal uses whatever Debian mirror this
 * machine itself is configured with, so it works behind a local mirror or a snapshot archive too.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export interface AptSource {
    /** The file the entry came from (for error messages). */
    file: string;
    types: string[];
    uris: string[];
    suites: string[];
    components: string[];
    signedBy?: string;
}

/** Parse one-line format (`deb [options] uri suite [component...]`). */
export function parseOneLineSources(file: string, text: string): AptSource[] {
    const out: AptSource[] = [];
    for (const raw of text.split("\n")) {
        const line = raw.replace(/#.*$/, "").trim();
        if (line === "") continue;
        let rest = line;
        const type = rest.split(/\s+/)[0];
        rest = rest.slice(type.length).trim();
        let signedBy: string | undefined;
        if (rest.startsWith("[")) {
            const end = rest.indexOf("]");
            if (end < 0) continue;
            const options = rest.slice(1, end).trim().split(/\s+/);
            for (const o of options) {
                const m = /^signed-by=(.*)$/i.exec(o);
                if (m) signedBy = m[1];
            }
            rest = rest.slice(end + 1).trim();
        }
        const [uri, suite, ...components] = rest.split(/\s+/);
        if (!uri || !suite) continue;
        out.push({ file, types: [type], uris: [uri], suites: [suite], components, signedBy });
    }
    return out;
}

/** Parse deb822 format (stanzas of `Field: value`, continuation lines indented, `Enabled: no`). */
export function parseDeb822Sources(file: string, text: string): AptSource[] {
    const out: AptSource[] = [];
    const stanzas = text.split(/\n[ \t]*\n/);
    for (const stanza of stanzas) {
        const fields = new Map<string, string>();
        let last: string | undefined;
        for (const line of stanza.split("\n")) {
            if (line.startsWith("#") || line.trim() === "") continue;
            if (/^[ \t]/.test(line) && last) {
                fields.set(last, `${fields.get(last)}\n${line.trim()}`);
                continue;
            }
            const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
            if (!m) continue;
            last = m[1].toLowerCase();
            fields.set(last, m[2].trim());
        }
        if (fields.size === 0) continue;
        if ((fields.get("enabled") ?? "yes").toLowerCase() === "no") continue;
        const list = (k: string) => (fields.get(k) ?? "").split(/\s+/).filter((s) => s !== "");
        const uris = list("uris");
        const suites = list("suites");
        if (uris.length === 0 || suites.length === 0) continue;
        // Signed-By may be an inline key block (multi-line); only a file path is of use here.
        const signedBy = fields.get("signed-by");
        out.push({
            file, types: list("types"), uris, suites, components: list("components"),
            signedBy: signedBy && !signedBy.includes("\n") ? signedBy : undefined,
        });
    }
    return out;
}

/** Every apt source of this machine, from the files apt itself reads (other extensions are ignored, as apt does). */
export function readAptSources(etcApt = "/etc/apt"): AptSource[] {
    const out: AptSource[] = [];
    const main = path.join(etcApt, "sources.list");
    if (fs.existsSync(main)) out.push(...parseOneLineSources(main, fs.readFileSync(main, "utf8")));
    const dir = path.join(etcApt, "sources.list.d");
    const names = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
    for (const name of names) {
        const file = path.join(dir, name);
        if (name.endsWith(".list")) out.push(...parseOneLineSources(file, fs.readFileSync(file, "utf8")));
        else if (name.endsWith(".sources")) out.push(...parseDeb822Sources(file, fs.readFileSync(file, "utf8")));
    }
    return out;
}

/** The file name apt gives a downloaded index: the URI without scheme, `/` replaced by `_`. */
function listFilePrefix(uri: string, suite: string): string {
    const bare = uri.replace(/^[a-z0-9+]+:\/\//i, "").replace(/\/+$/, "");
    return `${bare}/dists/${suite}`.replace(/\//g, "_");
}

/**
 * What the machine's own apt knows about a source: the `Origin:` of its downloaded Release file,
 * if apt has fetched it (undefined otherwise).
 */
export function releaseOrigin(uri: string, suite: string, listsDir = "/var/lib/apt/lists"): string | undefined {
    const prefix = listFilePrefix(uri, suite);
    for (const name of [`${prefix}_InRelease`, `${prefix}_Release`]) {
        try {
            const text = fs.readFileSync(path.join(listsDir, name), "utf8");
            const m = /^Origin:\s*(.+)$/m.exec(text);
            if (m) return m[1].trim();
        } catch {
            // not downloaded
        }
    }
    return undefined;
}

export interface DebianSources {
    /** The archive URI `mmdebstrap` installs the base system from. */
    mirror: string;
    /** The hosts' own `/etc/apt/sources.list.d/debian.sources` (deb822): the release, its updates and security. */
    deb822: string;
}

const DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

/**
 * The Debian entries for `suite` (and `suite-updates`, `suite-security`) among `sources`.
 * An entry counts as Debian when apt's downloaded Release file says `Origin: Debian`, or, when
 * apt has not fetched it yet, when it is signed by the Debian archive keyring. Throws naming the
 * files read when there is no entry for the release itself.
 */
export function debianSources(sources: AptSource[], suite = "bookworm",
    origin: (uri: string, suite: string) => string | undefined = releaseOrigin): DebianSources {
    const wanted = new Set([suite, `${suite}-updates`, `${suite}-security`]);
    const entries: { uri: string; suite: string; components: string[] }[] = [];
    for (const s of sources) {
        if (!s.types.includes("deb")) continue;
        for (const uri of s.uris) {
            for (const su of s.suites) {
                if (!wanted.has(su)) continue;
                const o = origin(uri, su);
                const isDebian = o !== undefined ? o === "Debian" : (s.signedBy === undefined || s.signedBy.includes("debian-archive-keyring"));
                if (!isDebian) continue;
                if (entries.some((e) => e.uri === uri && e.suite === su)) continue;
                entries.push({ uri, suite: su, components: s.components.length > 0 ? s.components : ["main"] });
            }
        }
    }
    const release = entries.find((e) => e.suite === suite);
    if (!release) {
        const files = [...new Set(sources.map((s) => s.file))];
        throw new Error(`no Debian ${suite} entry in this machine's apt sources (read: ${files.join(", ") || "none"}); ` +
            `the deploy rehearsal installs its hosts from the same mirror this machine uses`);
    }
    const stanzas = entries.map((e) => [
        "Types: deb",
        `URIs: ${e.uri}`,
        `Suites: ${e.suite}`,
        `Components: ${e.components.join(" ")}`,
        `Signed-By: ${DEBIAN_KEYRING}`,
    ].join("\n"));
    return { mirror: release.uri, deb822: stanzas.join("\n\n") + "\n" };
}

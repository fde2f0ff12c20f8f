/**
 * The deploy rehearsal takes its Debian mirror from this machine's apt sources: both formats,
 * disabled entries, and third-party repositories that must not be mistaken for Debian.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { debianSources, parseDeb822Sources, parseOneLineSources, readAptSources, releaseOrigin } from "../../lab/deploy/aptsources";
import { tempDir } from "../helpers/tools";

// Host names below are reserved example names (RFC 2606), never a real mirror.
const DEB822 = `Types: deb
# a comment inside the stanza
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://vendor.example/apt
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/vendor.gpg

Enabled: no
Types: deb
URIs: http://old.example/debian
Suites: bookworm
Components: main
`;

describe("apt sources", () => {
    it("parses deb822 stanzas, skipping disabled ones", () => {
        const s = parseDeb822Sources("x.sources", DEB822);
        assert.equal(s.length, 3);
        assert.deepEqual(s[0].suites, ["bookworm", "bookworm-updates"]);
        assert.equal(s[0].signedBy, "/usr/share/keyrings/debian-archive-keyring.gpg");
    });

    it("parses one-line entries with options and comments", () => {
        const s = parseOneLineSources("x.list", [
            "# deb http://commented.example/debian bookworm main",
            "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm main contrib",
            "deb-src http://mirror.example/debian bookworm main",
            "",
        ].join("\n"));
        assert.equal(s.length, 2);
        assert.deepEqual(s[0], {
            file: "x.list", types: ["deb"], uris: ["http://mirror.example/debian"], suites: ["bookworm"],
            components: ["main", "contrib"], signedBy: "/usr/share/keyrings/debian-archive-keyring.gpg",
        });
        assert.deepEqual(s[1].types, ["deb-src"]);
    });

    it("picks the Debian release, updates and security entries, not a vendor's repository", () => {
        const d = debianSources(parseDeb822Sources("x.sources", DEB822), "bookworm", () => undefined);
        assert.equal(d.mirror, "http://mirror.example/debian");
        assert.match(d.deb822, /Suites: bookworm\n/);
        assert.match(d.deb822, /Suites: bookworm-updates\n/);
        assert.match(d.deb822, /URIs: http:\/\/mirror.example\/debian-security\nSuites: bookworm-security/);
        assert.doesNotMatch(d.deb822, /vendor|old\.example/);
    });

    it("trusts apt's downloaded Release Origin over the keyring guess", () => {
        const dir = tempDir("apt-lists");
        try {
            fs.writeFileSync(path.join(dir, "mirror.example_debian_dists_bookworm_InRelease"), "Origin: Debian\nLabel: Debian\n");
            fs.writeFileSync(path.join(dir, "vendor.example_apt_dists_bookworm_InRelease"), "Origin: Vendor\n");
            assert.equal(releaseOrigin("http://mirror.example/debian", "bookworm", dir), "Debian");
            assert.equal(releaseOrigin("https://vendor.example/apt/", "bookworm", dir), "Vendor");
            // A repository without a keyring of its own that apt says is not Debian is left out.
            const sources = parseOneLineSources("x.list", "deb https://vendor.example/apt bookworm main\ndeb http://mirror.example/debian bookworm main\n");
            const d = debianSources(sources, "bookworm", (u, s) => releaseOrigin(u, s, dir));
            assert.equal(d.mirror, "http://mirror.example/debian");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("says which files it read when there is no Debian entry", () => {
        assert.throws(() => debianSources(parseOneLineSources("/etc/apt/sources.list", "deb https://vendor.example/apt bookworm main\n"), "bookworm", () => "Vendor"),
            /no Debian bookworm entry in this machine's apt sources \(read: \/etc\/apt\/sources.list\)/);
    });

    it("reads both formats from a directory the way apt does (other extensions ignored)", () => {
        const dir = tempDir("etc-apt");
        try {
            fs.mkdirSync(path.join(dir, "sources.list.d"));
            fs.writeFileSync(path.join(dir, "sources.list.d", "debian.sources"), DEB822);
            fs.writeFileSync(path.join(dir, "sources.list.d", "extra.list"), "deb http://other.example/debian bookworm main\n");
            fs.writeFileSync(path.join(dir, "sources.list.d", "off.list.disabled"), "deb http://off.example/debian bookworm main\n");
            const all = readAptSources(dir);
            assert.deepEqual(all.map((s) => s.uris[0]), [
                "http://mirror.example/debian", "http://mirror.example/debian-security", "https://vendor.example/apt", "http://other.example/debian",
            ]);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

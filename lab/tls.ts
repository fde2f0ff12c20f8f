/**
 * The lab's own PKI, used where the stack run gave no usable TLS material: a CA playing
 * Cloudflare's Origin CA with a server certificate for the PoPs (TLS_PATHS), and a CA playing
 * Cloudflare's Authenticated Origin Pulls with the client certificate the lab's clients present.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./exec";

export interface LabTls {
    serverCertPem: string;
    serverKeyPem: string;
    /** Verifies the server certificate (the lab's clients trust it). */
    serverCaPem: string;
    /** The CA nginx checks client certificates against (origin-pull-ca.pem). */
    pullCaPem: string;
    pullClientCertPem: string;
    pullClientKeyPem: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
    await run("openssl", args, { env: { ...process.env, OPENSSL_CONF: "/dev/null" } }).catch((e: Error) => {
        throw new Error(`openssl ${args[0]} in ${dir}: ${e.message}`);
    });
}

/** Make every certificate with openssl in `dir` (EC P-256, valid for 30 days). */
export async function makeLabTls(dir: string, serverNames: string[], anycastAddress: string): Promise<LabTls> {
    fs.mkdirSync(dir, { recursive: true });
    const f = (name: string) => path.join(dir, name);
    const key = (name: string) => openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f(name)]);
    const ca = async (name: string, subject: string) => {
        await key(`${name}.key`);
        await openssl(dir, ["req", "-x509", "-new", "-key", f(`${name}.key`), "-subj", `/CN=${subject}`, "-days", "30",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", f(`${name}.pem`)]);
    };
    const leaf = async (name: string, caName: string, subject: string, ext: string[]) => {
        await key(`${name}.key`);
        await openssl(dir, ["req", "-new", "-key", f(`${name}.key`), "-subj", `/CN=${subject}`, "-out", f(`${name}.csr`)]);
        fs.writeFileSync(f(`${name}.ext`), ext.join("\n") + "\n");
        await openssl(dir, ["x509", "-req", "-in", f(`${name}.csr`), "-CA", f(`${caName}.pem`), "-CAkey", f(`${caName}.key`),
            "-CAcreateserial", "-days", "30", "-extfile", f(`${name}.ext`), "-out", f(`${name}.pem`)]);
    };
    await ca("origin-ca", "anycast lab origin CA (plays Cloudflare's Origin CA)");
    await ca("pull-ca", "anycast lab origin-pull CA (plays Cloudflare's AOP CA)");
    const sans = [...serverNames.map((n) => `DNS:${n}`), `IP:${anycastAddress}`].join(",");
    await leaf("server", "origin-ca", serverNames[0] ?? "anycast", [`subjectAltName=${sans}`, "extendedKeyUsage=serverAuth"]);
    await leaf("pull-client", "pull-ca", "cloudflare origin pull (lab)", ["extendedKeyUsage=clientAuth"]);
    const read = (name: string) => fs.readFileSync(f(name), "utf8");
    return {
        serverCertPem: read("server.pem"), serverKeyPem: read("server.key"), serverCaPem: read("origin-ca.pem"),
        pullCaPem: read("pull-ca.pem"), pullClientCertPem: read("pull-client.pem"), pullClientKeyPem: read("pull-client.key"),
    };
}

/** Whether a PEM text parses as a certificate (mocks may hand out placeholders). */
export async function isCertificate(pem: string | undefined): Promise<boolean> {
    if (!pem || !pem.includes("BEGIN CERTIFICATE")) return false;
    const res = await run("openssl", ["x509", "-noout"], { input: pem, allowFail: true });
    return res.code === 0;
}

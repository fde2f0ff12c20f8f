/**
 * CloudflareFrontDoor: how visitors reach the anycast edge through Cloudflare.
 *
 * - an unproxied ("grey") AAAA `anycastName` -> the anycast address: Cloudflare's colos
 *   resolve it and, following BGP, reach the nearest PoP;
 * - a proxied ("orange") CNAME `hostname` -> `anycastName`, so IPv4-only visitors reach an
 *   IPv6-only edge through Cloudflare;
 * - TLS "Full (strict)": a Cloudflare Origin CA certificate for both names (key and CSR from
 *   @pulumi/tls), served by every PoP;
 * - Authenticated Origin Pulls with a zone-level client certificate of our own CA: the PoPs
 *   accept HTTPS only from Cloudflare pulls for *this* zone (Cloudflare's shared pull
 *   certificate would let any Cloudflare customer's traffic through).
 */
import * as pulumi from "@pulumi/pulumi";
import * as cloudflare from "@pulumi/cloudflare";
import * as tls from "@pulumi/tls";
import { IpAddress } from "./core/addressing";
import { FrontDoorSpec } from "./core/model";
import { TlsMaterial } from "./pop";

export interface CloudflareFrontDoorArgs {
    frontDoor: FrontDoorSpec;
    /** The anycast service address the AAAA record points to. */
    address: IpAddress;
}

/** Cloudflare's longest Origin CA validity, in days (15 years). */
const ORIGIN_CA_VALIDITY_DAYS = 5475;

export class CloudflareFrontDoor extends pulumi.ComponentResource {
    readonly zoneId: pulumi.Output<string>;
    readonly hostname: string;
    readonly anycastName: string;
    /** What every PoP's nginx needs for Full (strict) and Authenticated Origin Pulls. */
    readonly tls: TlsMaterial;
    /** The client certificate Cloudflare presents on origin pulls, and its key (a secret). */
    readonly originPullClient: { certPem: pulumi.Output<string>; keyPem: pulumi.Output<string> };

    constructor(name: string, args: CloudflareFrontDoorArgs, opts?: pulumi.ComponentResourceOptions) {
        super("anycast:index:CloudflareFrontDoor", name, {}, opts);
        const fd = args.frontDoor;
        this.hostname = fd.hostname;
        this.anycastName = fd.anycastName;
        this.zoneId = fd.zoneId !== undefined
            ? pulumi.output(fd.zoneId)
            : cloudflare.getZoneOutput({ filter: { name: fd.zone } }, { parent: this }).apply((z) => z.id);
        this.createRecords(name, fd, args.address);
        const server = this.createOriginCertificate(name, fd);
        const pulls = this.createOriginPulls(name, fd);
        this.originPullClient = pulls.client;
        this.tls = { ...server, clientCaPem: pulls.caCertPem };
        this.registerOutputs({ zoneId: this.zoneId, hostname: this.hostname, anycastName: this.anycastName });
    }

    /** The grey AAAA the colos resolve, and the orange CNAME visitors use. */
    private createRecords(name: string, fd: FrontDoorSpec, address: IpAddress): void {
        const aaaa = new cloudflare.DnsRecord(`${name}-aaaa`, {
            zoneId: this.zoneId,
            name: fd.anycastName,
            type: "AAAA",
            content: address.toString(),
            proxied: false,
            // Short but not "auto": the grey record is what colos resolve; 300 s bounds how long a
            // changed anycast address takes to reach them.
            ttl: 300,
            comment: "pulumi-anycast: anycast service address (unproxied)",
        }, { parent: this });
        new cloudflare.DnsRecord(`${name}-cname`, {
            zoneId: this.zoneId,
            name: fd.hostname,
            type: "CNAME",
            content: fd.anycastName,
            proxied: true,
            ttl: 1, // 1 = automatic, the only TTL a proxied record has
            comment: "pulumi-anycast: proxied front door",
        }, { parent: this, dependsOn: [aaaa] });
    }

    /** Full (strict): an Origin CA certificate for both names. */
    private createOriginCertificate(name: string, fd: FrontDoorSpec): Omit<TlsMaterial, "clientCaPem"> {
        const child = { parent: this };
        const serverKey = new tls.PrivateKey(`${name}-origin-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
        const csr = new tls.CertRequest(`${name}-origin-csr`, {
            privateKeyPem: serverKey.privateKeyPem,
            subject: { commonName: fd.hostname, organization: "pulumi-anycast" },
            dnsNames: [fd.hostname, fd.anycastName],
        }, child);
        const originCert = new cloudflare.OriginCaCertificate(`${name}-origin-cert`, {
            csr: csr.certRequestPem,
            hostnames: [fd.hostname, fd.anycastName],
            requestType: "origin-ecc",
            requestedValidity: ORIGIN_CA_VALIDITY_DAYS,
        }, child);
        if (fd.sslMode === "strict") {
            new cloudflare.ZoneSetting(`${name}-ssl-strict`, { zoneId: this.zoneId, settingId: "ssl", value: "strict" }, child);
        }
        return { certificatePem: originCert.certificate, privateKeyPem: pulumi.secret(serverKey.privateKeyPem) };
    }

    /** Authenticated Origin Pulls, zone-level, with a client CA of our own. */
    private createOriginPulls(name: string, fd: FrontDoorSpec):
        { caCertPem: pulumi.Output<string>; client: CloudflareFrontDoor["originPullClient"] } {
        const child = { parent: this };
        const caKey = new tls.PrivateKey(`${name}-pull-ca-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
        const caCert = new tls.SelfSignedCert(`${name}-pull-ca`, {
            privateKeyPem: caKey.privateKeyPem,
            isCaCertificate: true,
            subject: { commonName: `pulumi-anycast origin pull CA (${fd.hostname})` },
            allowedUses: ["cert_signing", "crl_signing"],
            validityPeriodHours: 10 * 365 * 24,
        }, child);
        const clientKey = new tls.PrivateKey(`${name}-pull-client-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
        const clientCsr = new tls.CertRequest(`${name}-pull-client-csr`, {
            privateKeyPem: clientKey.privateKeyPem,
            subject: { commonName: `cloudflare pull for ${fd.hostname}` },
        }, child);
        const clientCert = new tls.LocallySignedCert(`${name}-pull-client-cert`, {
            certRequestPem: clientCsr.certRequestPem,
            caCertPem: caCert.certPem,
            caPrivateKeyPem: caKey.privateKeyPem,
            allowedUses: ["digital_signature", "key_encipherment", "client_auth"],
            validityPeriodHours: 5 * 365 * 24,
        }, child);
        const pullCert = new cloudflare.AuthenticatedOriginPullsCertificate(`${name}-pull-cert`, {
            zoneId: this.zoneId,
            certificate: clientCert.certPem,
            privateKey: pulumi.secret(clientKey.privateKeyPem),
        }, child);
        new cloudflare.AuthenticatedOriginPullsSettings(`${name}-pull-enabled`, {
            zoneId: this.zoneId,
            enabled: true,
        }, { ...child, dependsOn: [pullCert] });
        return { caCertPem: caCert.certPem, client: { certPem: clientCert.certPem, keyPem: pulumi.secret(clientKey.privateKeyPem) } };
    }
}

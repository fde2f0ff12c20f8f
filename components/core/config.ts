/**
 * Stack config -> validated AnycastSpec.
 *
 * Two passes, so a user sees every problem at once: zod checks each top-level key's shape on
 * its own (a broken `pops` does not hide a broken `mesh`), then semantic checks run across the
 * keys that parsed (prefix lengths, overlaps, uniqueness, communities, ...). Every issue names
 * its config key the way `pulumi config` spells it (`anycast:pops[1].bgp.holdTime`), the value,
 * and what would be valid; shape errors are put in those words by config-issues.ts.
 *
 * Every address and prefix is parsed here, once, into the IpAddress and IpPrefix values the spec
 * holds (addressing.ts); nothing downstream parses them again.
 *
 * This file is the driver. The shapes, with each field's default and meaning, are config-shape.ts;
 * the checks are grouped by area: config-routing.ts (the announcement and BGP), config-hosts.ts
 * (the mesh and the hosts), origins.ts (the origins and failover) and config-service.ts (deploy,
 * front door, firewall, SSH key, monitoring, health).
 */
import { z } from "zod";
import { AnycastSpec, ConfigIssue, OriginSpec, PopSpec } from "./model";
import { Collector, describeShapeIssue, unknownKeyMessage, validPhrase } from "./config-issues";
import { originsSeen } from "./origin-as";
import { checkFailover, checkOriginPreferences, originEntries } from "./origins";
import { CONFIG_KEYS, keyPath, NAMESPACE, Parsed, popShape, topLevel, TopLevel } from "./config-shape";
import { checkAddress, checkAsn, checkBgpPassword, checkPrefixes, checkPrivateAsn, checkRoas } from "./config-routing";
import { checkHostsOutsidePrefixes, checkMeshAddressesUnique, checkOrigins, checkPops, meshAddressing } from "./config-hosts";
import { checkFrontDoor, checkHealth, checkMonitoring, checkSshPrivateKey, deploySpecFor, firewallSpecFor, reportFirewall } from "./config-service";

export { CONFIG_KEYS, CONFIG_SCHEMA, SECRET_KEYS, TEXT_KEYS } from "./config-shape";
export type { AnycastConfigInput } from "./config-shape";
export { formatCommunity, parseCommunity } from "./config-routing";
/** Field paths without an "accepts" phrase (test/unit/config.test.ts keeps this list empty). */
export { fieldsWithoutPhrase } from "./config-issues";
export { DAMPING_SUPPRESS_THRESHOLD, flapPenalty, worstFlapPenalty } from "./damping";

export { NAMESPACE } from "./config-shape";
export { DEPLOYER_ADDRESS_ENV } from "./config-service";

/** Thrown when the config has errors; `issues` lists them all, each once. */
export class ConfigError extends Error {
    constructor(readonly issues: ConfigIssue[]) {
        super(`invalid anycast config (${issues.length} error${issues.length === 1 ? "" : "s"}):\n` +
            issues.map((i) => `  - ${i.key}: ${i.message}`).join("\n"));
        this.name = "ConfigError";
    }
}


// ---------------------------------------------------------------------------------------------
// The two passes.
// ---------------------------------------------------------------------------------------------


/** Issues in order, each (key, message) once however many checks reach it. */
function collector(): Collector & { errors: ConfigIssue[]; warnings: ConfigIssue[] } {
    const errors: ConfigIssue[] = [];
    const warnings: ConfigIssue[] = [];
    const add = (list: ConfigIssue[]) => (key: string, message: string) => {
        if (!list.some((i) => i.key === key && i.message === message)) list.push({ key, message });
    };
    return { errors, warnings, error: add(errors), warn: add(warnings) };
}

/**
 * Validate raw config values (as read from `anycast:*`) into an AnycastSpec.
 * Throws ConfigError listing every problem; warnings are returned on the spec.
 */
export function parseAnycastConfig(raw: Record<string, unknown>): AnycastSpec {
    const c = collector();
    checkUnknownKeys(raw, c);
    const parsed = parseShapes(raw, c);

    const asn = checkAsn(parsed.asn, c);
    const prefixes = checkPrefixes(parsed.prefix, c);
    const address = checkAddress(parsed.address, prefixes, c);
    const rawOrigins = originEntries({ origin: raw.origin !== undefined, origins: raw.origins !== undefined }, parsed.origin, parsed.origins, c);
    const mesh = meshAddressing(parsed.mesh, rawOrigins.length, parsed.pops.length, prefixes, c);
    checkBgpPassword(raw, parsed, c);
    const firewall = firewallSpecFor(parsed.firewall);
    const deploy = deploySpecFor(parsed.deploy, parsed.firewall?.adminCidrs ?? [], firewall.spec?.adminCidrs ?? [], c);
    const originNames = rawOrigins.map((o) => o.raw.name);
    const pops = checkPops(parsed, asn ?? 0, originNames, mesh, c, deploy?.sshFamily);
    if (asn !== undefined) checkPrivateAsn(asn, parsed, pops, c);
    const { roas, rpki } = checkRoas(parsed.roas, prefixes, asn, asn === undefined ? [] : originsSeen(asn, pops), c);
    const origins = checkOrigins(rawOrigins, mesh, c, deploy?.sshFamily);
    checkOriginPreferences(parsed.pops.map((p) => p?.origins), originNames, c);
    const failover = parsed.failover && checkFailover(parsed.failover, parsed.mesh?.topology, origins, parsed.pops.length, c);
    checkMeshAddressesUnique(origins, pops, c);
    checkHostsOutsidePrefixes(parsed, rawOrigins, prefixes, c);
    const frontDoor = checkFrontDoor(parsed.frontDoor, c);
    reportFirewall(parsed.firewall, firewall.issues, c);
    checkSshPrivateKey(raw.sshPrivateKey, c);
    checkHealth(parsed.health, failover?.relayPort, c);
    const monitoring = parsed.monitoring && checkMonitoring(parsed.monitoring, originNames, parsed.mesh?.topology, c);

    if (c.errors.length > 0) throw new ConfigError(c.errors);
    // Every field below was checked above; the assertions only restate that to the compiler.
    const spec: AnycastSpec = withoutUndefinedFields({
        asn: asn!,
        prefixes,
        address: address!,
        bgpPassword: parsed.bgpPassword ?? "",
        sshPrivateKey: String(raw.sshPrivateKey),
        sshPublicKeys: parsed.sshPublicKeys ?? [],
        pops: pops as PopSpec[],
        origin: origins[0] as OriginSpec,
        origins: origins as OriginSpec[],
        failover: failover!,
        mesh: { ...parsed.mesh!, cidr: mesh.cidr! },
        frontDoor: frontDoor!,
        health: parsed.health!,
        firewall: firewall.spec!,
        deploy: deploy!,
        ...(monitoring ? { monitoring } : {}),
        roas,
        rpki,
        warnings: c.warnings,
    });
    // The first origin is the same object as origins[0] (the copy above made two).
    spec.origin = spec.origins[0];
    return spec;
}

/**
 * The spec without fields whose value is undefined (an optional setting left out), so that it
 * equals its own JSON round trip (spec-json.ts). Only plain objects and arrays are walked; the
 * IpAddress and IpPrefix values are kept as they are.
 */
function withoutUndefinedFields<T>(value: T): T {
    if (Array.isArray(value)) return value.map(withoutUndefinedFields) as T;
    if (value === null || typeof value !== "object" || Object.getPrototypeOf(value) !== Object.prototype) return value;
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, withoutUndefinedFields(v)])) as T;
}

function checkUnknownKeys(raw: Record<string, unknown>, c: Collector): void {
    for (const key of Object.keys(raw)) {
        if (!CONFIG_KEYS.includes(key)) c.error(`${NAMESPACE}:${key}`, unknownKeyMessage(key, CONFIG_KEYS));
    }
}

/** Pass 1: each key's shape on its own; what parses is returned, the rest reported. */
function parseShapes(raw: Record<string, unknown>, c: Collector): Parsed {
    const parsed: Parsed = { pops: [] };
    for (const [key, schema] of Object.entries(topLevel) as Array<[keyof TopLevel, z.ZodType]>) {
        const value = raw[key];
        if (value === undefined && !(schema instanceof z.ZodOptional) && !(schema instanceof z.ZodDefault)) {
            c.error(`${NAMESPACE}:${key}`, `is required: use ${validPhrase(schema)}`);
            continue;
        }
        const result = schema.safeParse(value, { reportInput: true });
        if (result.success) {
            (parsed as Record<string, unknown>)[key] = result.data;
        } else {
            for (const issue of result.error.issues) {
                for (const i of describeShapeIssue((path) => keyPath(key, path), schema, issue)) c.error(i.key, i.message);
            }
            // The PoPs that are fine on their own (their errors are reported above).
            if (key === "pops" && Array.isArray(value)) parsed.pops = value.map((p) => popShape.safeParse(p).data);
        }
    }
    return parsed;
}



/**
 * The spec's JSON form and back.
 *
 * IpAddress and IpPrefix serialise to their canonical text (`toJSON`), so `JSON.stringify(spec)`
 * is the spec with every address and prefix as a string: what a Pulumi output, a plan file or a
 * report holds. Pulumi does not call `toJSON` (its serialiser walks an object's own fields and
 * `pulumi.output` copies them without the class), so whatever registers a spec as an output
 * passes `specToJson(spec)`, and whatever reads one back calls `specFromJson`, which rebuilds
 * the typed values. Both work on the spec with or without its secrets (network.ts's NetworkSpec).
 */
import { IpAddress, IpPrefix } from "./addressing";
import { AnycastSpec, BgpSettings, DeploySpec, HostSpec, PopSpec } from "./model";

/** A value with every IpAddress and IpPrefix in it replaced by its canonical text. */
export type Jsonified<T> = T extends IpAddress | IpPrefix ? string
    : T extends ReadonlyArray<unknown> | object ? { [K in keyof T]: Jsonified<T[K]> }
    : T;

/** What specToJson and specFromJson work on: the spec, optionally without its secrets. */
export type SpecShape = Omit<AnycastSpec, "bgpPassword" | "sshPrivateKey" | "pops"> & {
    pops: Array<Omit<PopSpec, "bgp"> & { bgp: Omit<BgpSettings, "password"> }>;
};

/** The spec as plain JSON data: every address and prefix its canonical text. */
export function specToJson<S extends SpecShape>(spec: S): Jsonified<S> {
    return JSON.parse(JSON.stringify(spec)) as Jsonified<S>;
}

const address = (text: string) => IpAddress.parse(text);
const prefix = (text: string) => IpPrefix.parse(text);

function hostFromJson(host: Jsonified<HostSpec>): HostSpec {
    if (host.kind === "vultr") return host;
    const { address4, ...rest } = host;
    return { ...rest, address: address(host.address), ...(address4 !== undefined ? { address4: address(address4) } : {}) };
}

function deployFromJson({ deployerAddress, ...rest }: Jsonified<DeploySpec>): DeploySpec {
    return { ...rest, ...(deployerAddress !== undefined ? { deployerAddress: address(deployerAddress) } : {}) };
}

/**
 * The typed spec from its JSON form (specToJson, or JSON.parse of a file): every field that holds
 * an address or a prefix is parsed back, everything else is kept as it is. Throws on text that is
 * not an address or prefix, which only a hand-edited file can have.
 */
export function specFromJson<S extends SpecShape>(json: Jsonified<S>): S {
    const j = json as unknown as Jsonified<SpecShape>;
    const typed: SpecShape = {
        ...j,
        prefixes: j.prefixes.map(prefix),
        address: address(j.address),
        pops: j.pops.map((p) => ({
            ...p,
            host: hostFromJson(p.host),
            bgp: { ...p.bgp, neighbor: address(p.bgp.neighbor), neighbor4: address(p.bgp.neighbor4) },
            meshAddress: address(p.meshAddress),
        })),
        origin: { ...j.origin, host: hostFromJson(j.origin.host), meshAddress: address(j.origin.meshAddress) },
        origins: j.origins.map((o) => ({ ...o, host: hostFromJson(o.host), meshAddress: address(o.meshAddress) })),
        mesh: { ...j.mesh, cidr: prefix(j.mesh.cidr) },
        firewall: {
            adminCidrs: j.firewall.adminCidrs.map(prefix),
            ...(j.firewall.httpSources !== undefined ? { httpSources: j.firewall.httpSources.map(prefix) } : {}),
        },
        deploy: deployFromJson(j.deploy),
        roas: j.roas.map((r) => ({ ...r, prefix: prefix(r.prefix) })),
        rpki: j.rpki.map((r) => ({ ...r, prefix: prefix(r.prefix) })),
    };
    return typed as unknown as S;
}

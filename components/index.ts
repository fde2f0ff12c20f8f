/**
 * pulumi-anycast: components for an IPv6 anycast edge behind Cloudflare.
 * AnycastNetwork builds the whole edge; the components it is made of are exported for programs
 * that compose their own, with the config parser they take their validated input from.
 */
export {
    AnycastNetwork, AnycastNetworkArgs, NetworkSpec, NetworkSpecJson, networkSpecFromJson, PublicPopSpec, NetworkHost, ValidatedNetwork,
    validateAnycastNetwork, withoutSecrets,
} from "./network";
export { AnycastPoP, AnycastPoPArgs, TlsMaterial } from "./pop";
export { WireGuardMesh, WireGuardMeshArgs, MeshMember } from "./mesh";
export { CloudflareFrontDoor, CloudflareFrontDoorArgs } from "./frontdoor";
export { Origin, OriginArgs } from "./origin";
export { Host, HostArgs } from "./host";
export { HostFirewall, HostFirewallArgs } from "./firewall";
export { pushFile, FilePush } from "./push";
export { parseAnycastConfig, ConfigError, AnycastConfigInput } from "./core/config";
export * from "./core/model";
export { IpAddress, IpPrefix, Family } from "./core/addressing";
export { Jsonified, specFromJson, specToJson } from "./core/spec-json";

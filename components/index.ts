/**
 * pulumi-anycast: components for an IPv6 anycast edge behind Cloudflare.
 * The Pulumi components, plus the config parser they take their validated input from.
 */
export { AnycastPoP, AnycastPoPArgs, TlsMaterial } from "./pop";
export { WireGuardMesh, WireGuardMeshArgs, MeshMember } from "./mesh";
export { CloudflareFrontDoor, CloudflareFrontDoorArgs } from "./frontdoor";
export { Origin, OriginArgs } from "./origin";
export { Host, HostArgs } from "./host";
export { HostFirewall, HostFirewallArgs } from "./firewall";
export { pushFile, FilePush } from "./push";
export { parseAnycastConfig, ConfigError } from "./core/config";
export * from "./core/model";
export { deployAnycastNetwork, NetworkOutputs } from "../stacks/network/program";

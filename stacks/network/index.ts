/**
 * Pulumi program `stacks/network`: the stack's `anycast:` config -> `new AnycastNetwork(...)`
 * (validated first: every error at once, before any resource exists) -> the stack outputs.
 */
import { deployNetworkStack } from "./stack";

const { outputs } = deployNetworkStack();

export const anycastAddress = outputs.anycastAddress;
export const prefixes = outputs.prefixes;
export const pops = outputs.pops;
export const origin = outputs.origin;
export const origins = outputs.origins;
export const mesh = outputs.mesh;
export const dns = outputs.dns;
export const rpki = outputs.rpki;

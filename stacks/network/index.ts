/**
 * Pulumi program `stacks/network`: validate the whole `anycast:` config first (every error at
 * once, before any resource exists), then deploy the network.
 */
import * as pulumi from "@pulumi/pulumi";
import { parseAnycastConfig } from "../../components/core/config";
import { readStackConfig } from "./config";
import { deployAnycastNetwork } from "./program";

const raw = readStackConfig();
const spec = parseAnycastConfig(raw.values);
for (const w of [...raw.warnings, ...spec.warnings]) pulumi.log.warn(`${w.key}: ${w.message}`);
const network = deployAnycastNetwork(spec);

export const anycastAddress = network.anycastAddress;
export const prefixes = network.prefixes;
export const pops = network.pops;
export const origin = network.origin;
export const origins = network.origins;
export const mesh = network.mesh;
export const dns = network.dns;
export const rpki = network.rpki;

/**
 * What a rehearsal host is made from and what the rehearsal knows of it once booted: the
 * blueprint (name, kind, user data or existing state, addresses) and its checks, the host's
 * addresses in its slot, its boots, the slot's client namespaces and the run's deploy key.
 * hosts.ts (DeployCloud) boots hosts from these; nspawn.ts runs them.
 */
import { familyOf, formatCidr, nthAddress, parseCidr } from "../../components/core/addressing";
import type { HostInterfaceAddress } from "./cloud-network";
import type { ExistingHostState } from "./existing-host";
import { EXISTING_HOST_PACKAGES } from "./rootfs";

export interface HostAddressing {
    /** `address/length` for the host, or false for none; default one from the slot's block. */
    ipv4?: string | false;
    ipv6?: string | false;
    /** The host's gateway (held by the cloud namespace); default the first other address of the subnet. */
    gateway4?: string;
    gateway6?: string;
}

/** What a rehearsal host is made from (not core/model.ts HostSpec, a stack's host): its name, kind, user data or existing state, addresses. */
export interface HostBlueprint {
    /** The machine and host name: lower case letters, digits and dashes. */
    name: string;
    /** "new": a fresh instance running its user data; "existing": a server with a life before us. */
    kind: "new" | "existing";
    /** A new instance's cloud-init user data (Vultr's userData); absent means none. */
    userData?: string;
    /** A new instance's SSH keys (Vultr's sshKeyIds, NoCloud meta-data public-keys); default the run's deploy key. */
    sshKeys?: string[];
    existing?: ExistingHostState;
    addresses?: HostAddressing;
}

export interface BootRecord {
    /** Epoch ms when nspawn was started. */
    startedAt: number;
    /** Milliseconds from start until SSH accepted the deploy key (undefined until then). */
    sshReadyMs?: number;
}

export interface DeployHost {
    name: string;
    kind: "new" | "existing";
    /** The host's network namespace (add links to it to wire the host into a lab). */
    netns: string;
    /** The veth end in the cloud namespace that faces this host. */
    cloudInterface: string;
    ipv4?: string;
    ipv6?: string;
    prefix4?: string;
    prefix6?: string;
    gateway4?: string;
    gateway6?: string;
    /** The SSH login user (root on new instances). */
    user: string;
    /** The overlay's mount point: the host's root filesystem as seen from this machine. */
    rootDir: string;
    /** Every boot so far, the current one last. */
    boots: BootRecord[];
}

/** A client namespace of the slot (addClient). */
export interface DeployClient {
    name: string;
    netns: string;
    address: string;
    /** The veth end in the cloud namespace that faces this client. */
    cloudInterface: string;
}

export interface DeployKey {
    privateKey: string;
    /** The authorized_keys line. */
    publicKey: string;
    privateKeyFile: string;
}

/** Refuses a blueprint that cannot be booted (`taken`: the cloud has a host of that name already). */
export function checkBlueprint(blueprint: HostBlueprint, taken: boolean): void {
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(blueprint.name)) throw new Error(`host name ${JSON.stringify(blueprint.name)}: use 1-31 lower-case letters, digits and dashes, starting with a letter`);
    if (taken) throw new Error(`a host named ${blueprint.name} exists already`);
    if (blueprint.kind === "existing" && blueprint.userData !== undefined) throw new Error(`${blueprint.name}: an existing host has no user data (cloud-init does not run on it)`);
    if (blueprint.kind === "new" && blueprint.existing !== undefined) throw new Error(`${blueprint.name}: a new instance has no existing state`);
    const user = blueprint.existing?.user;
    if (user !== undefined && !/^[a-z_][a-z0-9_-]{0,30}$/.test(user)) throw new Error(`${blueprint.name}: user ${JSON.stringify(user)} is not a valid user name`);
    for (const p of blueprint.existing?.packages ?? []) {
        if (!EXISTING_HOST_PACKAGES.includes(p)) throw new Error(`${blueprint.name}: package ${p} is not one of the existing-host packages (${EXISTING_HOST_PACKAGES.join(", ")})`);
    }
    if (user !== undefined && user !== "root" && !(blueprint.existing?.packages ?? EXISTING_HOST_PACKAGES).includes("sudo")) {
        throw new Error(`${blueprint.name}: the non-root user ${user} needs the sudo package`);
    }
}

/** The host's address of one family in the slot: the blueprint's, or one from the slot's block by its index; undefined for none. */
export function hostAddress(slot: number, index: number, spec: HostAddressing | undefined, family: 4 | 6): HostInterfaceAddress | undefined {
    const given = family === 4 ? spec?.ipv4 : spec?.ipv6;
    if (given === false) return undefined;
    let text = given;
    if (text === undefined) {
        text = family === 4 ? `100.${64 + slot}.${index}.2/24` : `fdac:de:${slot.toString(16)}:${index.toString(16)}::2/64`;
    }
    const [address, len] = text.split("/");
    if (!address || !len || familyOf(address) !== family) throw new Error(`host address ${text}: expected an IPv${family} address/length`);
    const prefix = parseCidr(text, false);
    let gateway = family === 4 ? spec?.gateway4 : spec?.gateway6;
    if (!gateway) {
        gateway = nthAddress(prefix, 1);
        if (gateway === address) gateway = nthAddress(prefix, 2);
    }
    return { address, prefix: formatCidr(prefix), gateway, length: prefix.length };
}

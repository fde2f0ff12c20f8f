/**
 * How the deploy's pushes, and `anycast status`, log in to a host: the user and port (a Vultr
 * instance is root on 22; an existing server is what its `host` block says) and the address,
 * over the family the deployer can reach (`anycast:deploy.sshFamily`). A non-root user runs the
 * commands through `sudo -n`.
 */
import type { HostSpec } from "./model";

export interface SshLogin {
    user: string;
    port: number;
}

export function sshLoginOf(host: HostSpec): SshLogin {
    return host.kind === "existing" ? { user: host.user, port: host.port } : { user: "root", port: 22 };
}

/** The address SSH dials: IPv4 when the deploy says so and the host has one, else IPv6. */
export function sshAddressOf<T>(host: Pick<HostSpec, "sshFamily">, ipv6: T, ipv4: T | undefined): T {
    return host.sshFamily === 4 ? ipv4 ?? ipv6 : ipv6;
}

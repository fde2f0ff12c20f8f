/**
 * The ports a PoP's own services hold, in one place: the config checks refuse them for
 * health.statusPort and failover.relayPort, and their messages name what holds each one.
 */
import { EXPORTERS, NGINX_STUB_STATUS } from "./monitoring/exporters";

export const RESERVED_POP_PORTS: ReadonlyArray<{ port: number; holder: string }> = [
    { port: 22, holder: "SSH" },
    { port: 80, holder: "HTTP" },
    { port: 179, holder: "BGP" },
    { port: 443, holder: "HTTPS" },
    { port: EXPORTERS.bird.port, holder: "the bird exporter" },
    { port: EXPORTERS.nginx.port, holder: "the nginx exporter" },
    { port: NGINX_STUB_STATUS.port, holder: "nginx's stub_status" },
];

/** What holds `port` on a PoP, or undefined when it is free. */
export function popPortHolder(port: number): string | undefined {
    return RESERVED_POP_PORTS.find((r) => r.port === port)?.holder;
}

/** "22, 80, 179, 443, 9324, 9113 or 9145", for the shapes' expectations. */
export const RESERVED_POP_PORTS_TEXT = RESERVED_POP_PORTS.map((r) => r.port).join(", ");

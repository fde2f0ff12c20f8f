/**
 * `anycast preview`: the resources the stack would create, as a readable table, grouped by the
 * component they belong to (the `<host>-` prefix of their names).
 */
import { StackRun } from "../harness/stackrun";

/** The one input worth a column for each resource type. */
function keyInput(type: string, inputs: Record<string, unknown>): string {
    const s = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
    switch (type) {
        case "vultr:index/instance:Instance":
            return `${s(inputs.region)} ${s(inputs.plan)} ipv6=${s(inputs.enableIpv6)}`;
        case "cloudflare:index/dnsRecord:DnsRecord":
            return `${s(inputs.type)} ${s(inputs.name)} -> ${s(inputs.content)} ${inputs.proxied ? "proxied" : "unproxied"} ttl=${s(inputs.ttl)}`;
        case "command:remote:Command": {
            const stdin = inputs.stdin;
            return stdin === "[secret]" ? "push [secret] content" : `push ${typeof stdin === "string" ? stdin.length : 0} bytes`;
        }
        case "random:index/randomBytes:RandomBytes":
            return `${s(inputs.length)} bytes`;
        case "vultr:index/sSHKey:SSHKey":
            return s(inputs.name);
        case "cloudflare:index/zoneSetting:ZoneSetting":
            return `${s(inputs.settingId)}=${s(inputs.value)}`;
        case "cloudflare:index/originCaCertificate:OriginCaCertificate":
            return `${s(inputs.requestType)} ${s(inputs.hostnames)}`;
        default:
            return "";
    }
}

export function formatPreview(run: StackRun): string {
    const rows = run.resources.map((r) => [r.type, r.name, keyInput(r.type, r.inputs)]);
    const widths = [0, 1].map((i) => Math.max(...rows.map((r) => r[i].length), i === 0 ? 4 : 4));
    const line = (r: string[]) => `${r[0].padEnd(widths[0])}  ${r[1].padEnd(widths[1])}  ${r[2]}`.trimEnd();
    const counts = new Map<string, number>();
    for (const r of run.resources) counts.set(r.type, (counts.get(r.type) ?? 0) + 1);
    return [
        line(["TYPE", "NAME", "KEY INPUTS"]),
        ...rows.map(line),
        "",
        `${run.resources.length} resources to create: ` +
            [...counts.entries()].map(([t, n]) => `${n} ${t.split(":").pop()}`).join(", "),
    ].join("\n");
}

/**
 * Link-loss failover per provider profile: the same lab, with the PoPs' BGP timers set the way
 * each kind of upstream allows. A silently dead link is noticed by BFD where the peer runs it,
 * and otherwise only by the hold timer, so that choice is the whole trade-off.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import type { ExperimentReport } from "../lab/report";

export interface ProviderProfile {
    id: string;
    title: string;
    /** Replaces every PoP's `bgp` block in the lab stack. */
    bgp: Record<string, unknown>;
    /** Where this applies. */
    applies: string;
}

export const PROFILES: ProviderProfile[] = [
    {
        id: "vultr-default", title: "no BFD, hold 9 s (the default)", bgp: {},
        applies: "Vultr (BFD not documented) and any upstream without BFD",
    },
    {
        id: "no-bfd-hold-3", title: "no BFD, hold 3 s (the shortest BGP allows)", bgp: { holdTime: 3 },
        applies: "upstreams without BFD, if you accept keepalives every second and a false withdrawal after 3 s of loss",
    },
];

export interface ProfileFigure {
    profile: ProviderProfile;
    linkLoss?: ExperimentReport;
    error?: string;
}

/** The lab stack with every PoP's bgp block replaced, written to a temporary stack file. */
export function profileStackFile(configFile: string, profile: ProviderProfile, dir: string): string {
    const doc = parseYaml(fs.readFileSync(configFile, "utf8")) as { config: Record<string, unknown> };
    const pops = doc.config["anycast:pops"] as Array<Record<string, unknown>>;
    doc.config["anycast:pops"] = pops.map((p) => ({ ...p, bgp: profile.bgp }));
    const file = path.join(dir, `Pulumi.${profile.id}.yaml`);
    fs.writeFileSync(file, stringifyYaml(doc));
    return file;
}

export async function measureProfiles(configFile: string, repeats: number, log: (line: string) => void): Promise<ProfileFigure[]> {
    const { runLab } = await import("../lab/index");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-profiles-"));
    const out: ProfileFigure[] = [];
    try {
        for (const profile of PROFILES) {
            log(`link loss with ${profile.title}:`);
            try {
                // Only the runs' lines: the full report of each profile's lab would drown the bench's output.
                const report = await runLab({
                    configFile: profileStackFile(configFile, profile, dir), repeats, experiments: ["linkLoss"],
                    log: (line) => { if (/^\s+PoP link loss \d/.test(line)) log(line); },
                });
                out.push({ profile, linkLoss: report.experiments.find((e) => e.id === "linkLoss") });
            } catch (e) {
                out.push({ profile, error: (e as Error).message.split("\n")[0] });
            }
        }
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
    return out;
}

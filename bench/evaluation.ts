/**
 * Program evaluation: how long `stacks/network` takes to evaluate under mocks, and how many
 * resources it declares, as the number of PoPs grows (Vultr has ~32 regions).
 */
import { performance } from "node:perf_hooks";
import { readStackValues, runStack } from "../harness/stackrun";
import { summarize, Summary } from "../lab/stats";

/** Vultr's regions (32), used to fan a benchmark stack out. */
export const VULTR_REGIONS = [
    "ams", "atl", "blr", "bom", "cdg", "del", "dfw", "ewr", "fra", "hnl", "icn", "itm", "jnb", "lax", "lhr", "mad",
    "man", "mel", "mex", "mia", "nrt", "ord", "sao", "scl", "sea", "sgp", "sjc", "sto", "syd", "tlv", "waw", "yto",
];

export interface EvaluationFigure {
    pops: number;
    resources: number;
    ms: Summary;
}

export function configWithPops(configFile: string, pops: number): Record<string, unknown> {
    const raw = readStackValues(configFile);
    const template = (raw.pops as Record<string, unknown>[])[0];
    return {
        ...raw,
        sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nbench\n-----END OPENSSH PRIVATE KEY-----\n",
        bgpPassword: raw.bgpPassword ?? "bench-password",
        pops: VULTR_REGIONS.slice(0, pops).map((region) => ({ ...template, name: region, region })),
    };
}

export async function measureEvaluation(configFile: string, sizes: number[], repeats: number,
    log: (s: string) => void): Promise<EvaluationFigure[]> {
    const figures: EvaluationFigure[] = [];
    // One warm-up run: the first run pays for loading the provider SDKs.
    await runStack({ values: configWithPops(configFile, 1) });
    for (const pops of sizes) {
        const samples: number[] = [];
        let resources = 0;
        for (let i = 0; i < repeats; i++) {
            const t0 = performance.now();
            const run = await runStack({ values: configWithPops(configFile, pops) });
            samples.push(performance.now() - t0);
            resources = run.resources.length;
        }
        const fig = { pops, resources, ms: summarize(samples) };
        log(`  ${String(pops).padStart(2)} PoPs: ${String(resources).padStart(4)} resources, ` +
            `${fig.ms.min.toFixed(0)} / ${fig.ms.median.toFixed(0)} / ${fig.ms.max.toFixed(0)} ms (min/median/max of ${repeats})`);
        figures.push(fig);
    }
    return figures;
}

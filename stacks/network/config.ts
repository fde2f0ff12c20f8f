/**
 * Reading `anycast:*` stack config into the raw object parseAnycastConfig validates.
 *
 * Secret values are read in plain text here on purpose: validation must see them (length,
 * characters) before any resource exists. Everything rendered from them is wrapped in
 * pulumi.secret by the components.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConfigIssue } from "../../components/core/model";
import { DEPLOYER_ADDRESS_ENV, NAMESPACE, SECRET_KEYS, TEXT_KEYS } from "../../components/core/config";

/**
 * Whether a config key was set with --secret. The SDK has this (runtime/config.js) but does not
 * declare it; without it a plain-text password in a stack file would go unnoticed.
 */
const isConfigSecret: (key: string) => boolean =
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require("@pulumi/pulumi/runtime/config") as { isConfigSecret: (key: string) => boolean }).isConfigSecret;

/** Keys whose values are plain strings even when they look like JSON ("12345" stays a password). */
const STRING_KEYS = new Set(TEXT_KEYS);

function decode(key: string, value: string): unknown {
    if (STRING_KEYS.has(key)) return value;
    try {
        return JSON.parse(value);
    } catch {
        return value;
    }
}

export interface RawConfig {
    values: Record<string, unknown>;
    /** Secrets stored in plain text in the stack file. */
    warnings: ConfigIssue[];
}

/**
 * Every `anycast:` key, as Pulumi hands it to the program: the CLI merges Pulumi.yaml's defaults
 * in before the program starts (pulumi/pulumi sdk/go/common/workspace/config.go, mergeConfig), so
 * a key the stack leaves out arrives with its project default, rendered as text ({} as "{}").
 * Pulumi.yaml uses "" as the default of keys whose absence no value can express (address, roas,
 * the secrets), so an empty string reads as "not set", the same as a key the stack file omits.
 */
export function readStackConfig(): RawConfig {
    const values: Record<string, unknown> = {};
    const warnings: ConfigIssue[] = [];
    for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
        const [ns, key] = fullKey.split(":", 2);
        if (ns !== NAMESPACE || key === undefined || value === "") continue;
        values[key] = decode(key, value);
        if (SECRET_KEYS.includes(key) && !isConfigSecret(fullKey)) {
            warnings.push({ key: fullKey, message: `is stored in plain text; use pulumi config set --secret ${fullKey}` });
        }
    }
    // The deploying address may come from the environment (a CI job knows it only at run time).
    const fromEnv = process.env[DEPLOYER_ADDRESS_ENV];
    if (fromEnv) {
        const deploy = (typeof values.deploy === "object" && values.deploy !== null ? values.deploy : {}) as Record<string, unknown>;
        if (deploy.deployerAddress === undefined) values.deploy = { ...deploy, deployerAddress: fromEnv.trim() };
    }
    return { values, warnings };
}

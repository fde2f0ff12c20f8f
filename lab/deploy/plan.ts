/**
 * The remote commands a `pulumi up` of a stack would run, taken from the real program: the
 * stack runs under the mocks (harness/stackrun.ts), and every `command:remote:Command`
 * registration is recorded with its exact inputs (create, stdin, connection, triggers) and the
 * resources it depends on, as the engine receives them (explicit dependsOn, with components
 * expanded to their children, and the dependencies of each input). Only the dependencies on
 * other commands order the run: every other resource (an instance, a key) exists before the
 * rehearsal runs a command, as the engine would have created it first.
 *
 * `changedCommands` is the engine's diff for a second `pulumi up`: a command whose create, stdin,
 * environment or triggers differ from the last run's runs again; an unchanged one does not.
 */
import { runStack, StackRunOptions } from "../../harness/stackrun";
import { unwrapSecrets } from "../../harness/mockcloud";
import { RemoteCommandSpec, SshConnection } from "./remote";

export interface PlannedCommand extends RemoteCommandSpec {
    /** The trigger values, as recorded (a changed one makes the engine run the command again). */
    triggers: unknown[];
}

export interface DeployPlan {
    commands: PlannedCommand[];
    /** The stack run itself (hosts, rendered files, warnings). */
    run: Awaited<ReturnType<typeof runStack>>;
}

interface RegisterRequest {
    getType(): string;
    getName(): string;
    getDependenciesList(): string[];
    getPropertydependenciesMap(): { forEach(cb: (value: { getUrnsList(): string[] }, key: string) => void): void };
}

interface MockMonitorInternals {
    registerResource(req: RegisterRequest, callback: (err: unknown, res: unknown) => void): Promise<void>;
    mocks: { newResource(args: { type: string; name: string; inputs: Record<string, unknown> }): { id?: string; state: Record<string, unknown> } };
}

export interface PlanOptions extends StackRunOptions {
    /**
     * The addresses the cloud gives each Vultr instance, by hostname (the mocks' own otherwise):
     * the rehearsal boots its hosts first and hands their addresses to the program, as Vultr's
     * instance outputs would.
     */
    instanceAddresses?: Record<string, { ipv6: string; ipv4?: string }>;
}

const COMMAND_TYPE = "command:remote:Command";
const INSTANCE_TYPE = "vultr:index/instance:Instance";

/** Run the stack program under mocks and return its remote commands in registration order. */
export async function planDeploy(options: PlanOptions): Promise<DeployPlan> {
    const deps = new Map<string, Set<string>>();
    const run = await runStack({
        ...options,
        onMockCloud: (cloud) => {
            options.onMockCloud?.(cloud);
            // The mock monitor is internal to the SDK; the dependencies reach only its registerResource.
            const monitor = (require("@pulumi/pulumi/runtime/settings") as { getMonitor(): MockMonitorInternals }).getMonitor();
            const register = monitor.registerResource.bind(monitor);
            monitor.registerResource = (req, callback) => {
                if (req.getType() === COMMAND_TYPE) {
                    const urns = new Set(req.getDependenciesList());
                    req.getPropertydependenciesMap().forEach((v) => v.getUrnsList().forEach((u) => urns.add(u)));
                    deps.set(req.getName(), urns);
                }
                return register(req, callback);
            };
            const addresses = options.instanceAddresses;
            if (addresses) {
                const mocks = monitor.mocks;
                const newResource = mocks.newResource.bind(mocks);
                monitor.mocks = {
                    ...mocks,
                    newResource: (args) => {
                        const result = newResource(args);
                        // By the instance's hostname (the PoP or origin name), whatever the resource is called.
                        const a = args.type === INSTANCE_TYPE ? addresses[String(args.inputs.hostname)] : undefined;
                        if (!a) return result;
                        return { ...result, state: { ...result.state, v6MainIp: a.ipv6, mainIp: a.ipv4 ?? "" } };
                    },
                } as MockMonitorInternals["mocks"];
            }
        },
    });
    const commands = run.mocked.filter((r) => r.type === COMMAND_TYPE);
    const names = new Set(commands.map((c) => c.name));
    const nameOfUrn = (urn: string) => urn.split("::").pop() ?? urn;
    const planned = commands.map((c): PlannedCommand => {
        const inputs = unwrapSecrets(c.inputs) as Record<string, unknown>;
        const conn = inputs.connection as Record<string, unknown>;
        const connection: SshConnection = {
            host: String(conn.host), port: Number(conn.port ?? 22), user: String(conn.user ?? "root"),
            privateKey: String(conn.privateKey), perDialTimeout: conn.perDialTimeout as number | undefined,
            dialErrorLimit: conn.dialErrorLimit as number | undefined,
        };
        const dependsOn = [...(deps.get(c.name) ?? [])].map(nameOfUrn).filter((n) => names.has(n) && n !== c.name);
        return {
            name: c.name, connection, create: String(inputs.create),
            stdin: inputs.stdin === undefined ? undefined : String(inputs.stdin),
            environment: inputs.environment as Record<string, string> | undefined,
            dependsOn: [...new Set(dependsOn)],
            triggers: (inputs.triggers as unknown[] | undefined) ?? [],
        };
    });
    return { commands: planned, run };
}

/** What a later `pulumi up` re-runs: the commands that are new or whose create, stdin, environment or triggers changed. */
export function changedCommands(before: PlannedCommand[], after: PlannedCommand[]): PlannedCommand[] {
    const old = new Map(before.map((c) => [c.name, c]));
    const key = (c: PlannedCommand) => JSON.stringify([c.create, c.stdin ?? "", c.environment ?? {}, c.triggers]);
    return after.filter((c) => {
        const o = old.get(c.name);
        return o === undefined || key(o) !== key(c);
    });
}

/** The commands to run for a later update: the changed ones, their dependencies on unchanged ones dropped (those exist). */
export function updateRun(changed: PlannedCommand[]): PlannedCommand[] {
    const names = new Set(changed.map((c) => c.name));
    return changed.map((c) => ({ ...c, dependsOn: (c.dependsOn ?? []).filter((d) => names.has(d)) }));
}

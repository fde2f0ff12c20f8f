/**
 * Pushing a rendered file to a host and applying it in place.
 *
 * One `remote.Command` per file: the content travels on stdin (so it is visible to
 * `pulumi preview` as a diff, stays a secret when the content is one, and needs no temporary
 * asset on the deploying machine), is validated on the host before it replaces the live file,
 * and is then applied with the daemon's own reload. The trigger is the content's hash, so an
 * unchanged file is never re-pushed, and a changed one never touches the host resource itself.
 * Each file's path, owner, mode, check and reload come from the registry
 * (components/core/artifacts.ts), not from the caller.
 *
 * Every push runs as root: for a login user other than root it goes through `sudo -n`
 * (passwordless sudo, see README), which passes stdin on to the script.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { ARTIFACTS, PushedArtifactName, pushScript } from "./core/artifacts";
import { shellQuote } from "./core/shell";

export type Connection = command.types.input.remote.ConnectionArgs;

export interface FilePush {
    /** Which file (components/core/artifacts.ts): its path, owner, mode, checks and reload come from there. */
    file: PushedArtifactName;
    /** The rendered content; made a Pulumi secret here when the artifact is secret. */
    content: pulumi.Input<string>;
}

export { sha256 } from "./core/digest";
export { shellQuote } from "./core/shell";

/**
 * The `create` of a script run as root on a host whose login user is `user`: as is for root,
 * through `sudo -n` otherwise, failing with a clear message when sudo needs a password.
 */
export function asRoot(script: string, user = "root"): string {
    const run = `bash -c ${shellQuote(script)}`;
    if (user === "root") return run;
    return `sudo -n true 2>/dev/null || { echo ${shellQuote(`${user} needs passwordless sudo on this host (see README: existing servers)`)} >&2; exit 1; }; ` +
        `sudo -n ${run}`;
}

/**
 * Create the Command that pushes one file. Named `<host>-push-<file>` so that plans and the
 * `anycast render` CLI can tell which host and artifact it carries.
 */
export function pushFile(host: string, push: FilePush, connection: pulumi.Input<Connection>,
    opts: pulumi.CustomResourceOptions, user = "root"): command.remote.Command {
    const artifact = ARTIFACTS[push.file];
    const content = artifact.secret ? pulumi.secret(push.content) : pulumi.output(push.content);
    return new command.remote.Command(`${host}-push-${push.file}`, {
        connection,
        // bash explicitly: the login shell of the remote user may be anything.
        create: asRoot(pushScript(artifact), user),
        // A changed stdin or script is an update, and pulumi-command runs `create` again on update
        // (no `update` command is set): the push replaces no resource. Only `connection` and
        // `triggers` replace a Command (the provider's schema).
        stdin: content,
        logging: "stderr",
    }, {
        ...opts,
        // Networks deployed before 0.2 hold `triggers: [sha256(content)]`; ignoring the field keeps
        // their value, so an upgrade shows every changed push as an update, never a replacement.
        ignoreChanges: [...(opts.ignoreChanges ?? []), "triggers"],
    });
}

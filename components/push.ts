/**
 * Pushing a rendered file to a host and applying it in place.
 *
 * One `remote.Command` per file: the content travels on stdin (so it is visible to
 * `pulumi preview` as a diff, stays a secret when the content is one, and needs no temporary
 * asset on the deploying machine), is validated on the host before it replaces the live file,
 * and is then applied with the daemon's own reload. The trigger is the content's hash, so an
 * unchanged file is never re-pushed, and a changed one never touches the host resource itself.
 */
import * as crypto from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";

export type Connection = command.types.input.remote.ConnectionArgs;

export interface FilePush {
    /** The artifact name (docs/ARTIFACTS.md), e.g. "bird.conf". */
    file: string;
    /** Where it goes on the host. */
    remotePath: string;
    content: pulumi.Input<string>;
    mode: string;
    /** Shell run with the new file at "$new" before it is installed; a failure keeps the old file. */
    validate?: string;
    /** Shell run after the file is installed (reload in place). */
    apply?: string;
}

export function sha256(text: string): string {
    return crypto.createHash("sha256").update(text).digest("hex");
}

/** Quote a string for POSIX shells. */
export function shellQuote(text: string): string {
    return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** The shell that receives the file on stdin, validates it, installs it atomically and applies it. */
export function pushScript(push: Omit<FilePush, "content">): string {
    const lines = [
        "set -eu",
        `new=$(mktemp "/tmp/anycast-${push.file.replace(/[^A-Za-z0-9._-]/g, "_")}.XXXXXX")`,
        "trap 'rm -f \"$new\"' EXIT",
        "umask 077",
        "cat > \"$new\"",
    ];
    if (push.validate) lines.push(push.validate);
    lines.push(`install -D -m ${push.mode} "$new" ${push.remotePath}`);
    if (push.apply) lines.push(push.apply);
    return lines.join("\n");
}

/**
 * Create the Command that pushes one file. Named `<host>-push-<file>` so that plans and the
 * `anycast render` CLI can tell which host and artifact it carries.
 */
export function pushFile(host: string, push: FilePush, connection: pulumi.Input<Connection>,
    opts: pulumi.CustomResourceOptions): command.remote.Command {
    const content = pulumi.output(push.content);
    return new command.remote.Command(`${host}-push-${push.file}`, {
        connection,
        // bash explicitly: the login shell of the remote user may be anything.
        create: `bash -c ${shellQuote(pushScript(push))}`,
        stdin: content,
        // The hash of a secret (a bird.conf with its password) is kept secret too: apply on a
        // secret Output yields a secret.
        triggers: [content.apply(sha256)],
        logging: "stderr",
    }, opts);
}

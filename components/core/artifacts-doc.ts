/**
 * docs/ARTIFACTS.md, generated from the artifact registry (components/core/artifacts.ts) so that
 * the doc says what the code does: `npm run docs` writes it, and test/unit/artifacts.test.ts
 * fails when the committed file differs from what this renders.
 */
import { allArtifacts, Artifact, HostRole, PushedArtifact, pushScript } from "./artifacts";
import { ANYCAST_STATE, BIRD_STATE_FILE, renderBirdStateInclude } from "./render/bird";

export const ARTIFACTS_DOC_PATH = "docs/ARTIFACTS.md";

function hostsOf(a: Artifact): string {
    const roles: Record<HostRole, string> = { pop: "PoPs", origin: "the origin" };
    const who = a.roles.map((r) => roles[r]).join(" and ");
    return a.delivery === "user-data" ? `${who} this stack creates on Vultr` : who;
}

function summaryRow(a: Artifact): string {
    const cells = a.delivery === "push"
        ? [`\`${a.name}\``, `\`${a.remotePath}\``, `${a.owner}:${a.group} ${a.mode}`, hostsOf(a), a.secret ? "yes" : "no",
            a.validate ? "yes" : "no", a.apply ? "yes" : "no"]
        : [`\`${a.name}\``, "Vultr `userData`", "(cloud-init)", hostsOf(a), a.secret ? "yes" : "no", "no", "first boot only"];
    return `| ${cells.join(" | ")} |`;
}

function pushedSection(a: PushedArtifact): string[] {
    return [
        `Installed as \`${a.remotePath}\` (${a.owner}:${a.group}, mode ${a.mode})` +
            (a.secret ? "; a Pulumi secret in the push, owner-only in `anycast render`'s output." : "."),
        "",
        a.validate ? "Checked on the host before it replaces the live file:" : "Not checked on the host before it is installed.",
        ...(a.validate ? ["", "```sh", a.validate, "```"] : []),
        "",
        a.apply ? "Applied with:" : "Nothing is run after it is installed.",
        ...(a.apply ? ["", "```sh", a.apply, "```"] : []),
        "",
        "<details><summary>The whole push script (bash, the file on stdin)</summary>",
        "",
        "```sh",
        pushScript(a),
        "```",
        "",
        "</details>",
    ];
}

function section(a: Artifact): string[] {
    const lines = [`### \`${a.name}\``, "", a.description, "", `Comes from \`${a.source}\`; ${hostsOf(a)} get it.`, ""];
    if (a.delivery === "push") return [...lines, ...pushedSection(a), ""];
    return [...lines, "Vultr's `userData` of the instance: cloud-init runs it at first boot only. Later changes to it are " +
        "ignored (`ignoreChanges` in `components/host.ts`): Vultr would replace the instance.", ""];
}

export function renderArtifactsDoc(): string {
    const artifacts = allArtifacts();
    return [
        "# What lands on each host",
        "",
        "<!-- Generated from components/core/artifacts.ts by `npm run docs`: edit the registry, not this file.",
        "     test/unit/artifacts.test.ts fails when this file differs from what the registry generates. -->",
        "",
        "Every file below is rendered from the validated model (`components/core/model.ts`), written by",
        "`anycast render` to `<out>/<host>/<file>` (secret files owner-only), and booted by the lab",
        "(`anycast lab`), which renders the files that name paths or timers for a namespace's own",
        "layout (components/core/render/layout.ts) and says where it differs from a host's.",
        "",
        "Each pushed file is one `remote.Command` per host (`components/push.ts`): the content travels on",
        "stdin (a Pulumi secret when the file is secret), and the command re-runs only when the content's",
        "hash changes. On the host the push receives the file into a private temporary file (`$new`),",
        "checks it there, installs it atomically with its owner and mode, and applies it in place. A",
        "failed check leaves the live file alone and fails the push.",
        "",
        "| file (artifact name) | path on the host | owner, mode | who gets it | secret | checked before install | applied in place |",
        "|---|---|---|---|---|---|---|",
        ...artifacts.map(summaryRow),
        "",
        "## The files",
        "",
        ...artifacts.flatMap(section),
        "## The BIRD announcement switch",
        "",
        `\`bird.conf\` includes \`${BIRD_STATE_FILE}\`, which holds one line:`,
        "",
        "    " + renderBirdStateInclude(ANYCAST_STATE.withdrawn).trimEnd(),
        "",
        "The export filter of every upstream session reads `ANYCAST_STATE`. The health agent is the only",
        "writer of that file after boot: it writes the new line atomically (temp file + rename) and runs",
        "`birdc configure`, which re-evaluates the export filter and sends an UPDATE or WITHDRAW without",
        "resetting the session. A new host starts withdrawn (0): `anycast-net.sh` writes that line when",
        "the file is missing, and the agent announces once it has seen `rise` good checks in a row.",
        "",
    ].join("\n");
}

/**
 * The pushed authorized_keys and the script that merges it into the login user's file, run for
 * real with bash, ssh-keygen and shellcheck: configured keys land once inside the managed
 * block, removed keys are revoked, the host's own keys are kept.
 */
import { after, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
    AUTHORIZED_KEYS_BEGIN, AUTHORIZED_KEYS_END, MERGE_AUTHORIZED_KEYS_FUNCTION, renderAuthorizedKeys, VALIDATE_AUTHORIZED_KEYS,
} from "../../components/core/render/sshkeys";
import { ARTIFACTS, pushScript } from "../../components/core/artifacts";
import { needTools, run, runOk, tempDir } from "../helpers/tools";

const scratch = tempDir("sshkeys");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

function newKey(comment: string): string {
    const file = path.join(scratch, comment);
    runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
    return fs.readFileSync(`${file}.pub`, "utf8").trim();
}

function merge(managed: string, target: string): void {
    const owner = runOk("id", ["-un"]).trim();
    runOk("bash", ["-c", `set -eu\n${MERGE_AUTHORIZED_KEYS_FUNCTION}\nmerge_authorized_keys "$1" "$2" "$3"`, "merge", managed, target, owner]);
}

describe("authorized_keys", () => {
    test("renders one key per line and refuses anything else", () => {
        assert.equal(renderAuthorizedKeys([]), "");
        assert.equal(renderAuthorizedKeys(["ssh-ed25519 AAAA a@b", "ssh-rsa BBBB"]), "ssh-ed25519 AAAA a@b\nssh-rsa BBBB\n");
        assert.throws(() => renderAuthorizedKeys(["ssh-ed25519 AAAA\ncommand=\"sh\" ssh-rsa BBBB"]), /not an OpenSSH public key line/);
        assert.throws(() => renderAuthorizedKeys(["hunter2"]), /not an OpenSSH public key line/);
    });

    test("merges as a managed block: added once, revoked when removed, the host's own keys kept", (t) => {
        if (!needTools(t, "bash", "awk", "ssh-keygen")) return;
        const [own, first, second] = [newKey("own"), newKey("first"), newKey("second")];
        const managed = path.join(scratch, "managed");
        const target = path.join(scratch, "home", "authorized_keys");
        fs.mkdirSync(path.dirname(target), { recursive: true });
        // As cloud-init leaves a new instance: the configured key outside any block, beside the host's own.
        fs.writeFileSync(target, `${own}\n${first}\n`);

        fs.writeFileSync(managed, renderAuthorizedKeys([first, second]));
        merge(managed, target);
        const once = fs.readFileSync(target, "utf8");
        assert.equal(once, `${own}\n${AUTHORIZED_KEYS_BEGIN}\n${first}\n${second}\n${AUTHORIZED_KEYS_END}\n`);
        assert.equal(fs.statSync(target).mode & 0o777, 0o600, "sshd's StrictModes needs 0600");
        runOk("ssh-keygen", ["-l", "-f", target]);

        merge(managed, target);
        assert.equal(fs.readFileSync(target, "utf8"), once, "a second run changes nothing");

        fs.writeFileSync(managed, renderAuthorizedKeys([second]));
        merge(managed, target);
        assert.equal(fs.readFileSync(target, "utf8"), `${own}\n${AUTHORIZED_KEYS_BEGIN}\n${second}\n${AUTHORIZED_KEYS_END}\n`,
            "the removed key is revoked, the host's own key stays");

        fs.writeFileSync(managed, renderAuthorizedKeys([]));
        merge(managed, target);
        assert.equal(fs.readFileSync(target, "utf8"), `${own}\n${AUTHORIZED_KEYS_BEGIN}\n${AUTHORIZED_KEYS_END}\n`);
    });

    test("the push validates with ssh-keygen: an empty list passes, a broken key fails", (t) => {
        if (!needTools(t, "bash", "ssh-keygen")) return;
        const check = (content: string) => {
            const file = path.join(scratch, "candidate");
            fs.writeFileSync(file, content);
            return run("bash", ["-c", `set -eu\nnew=$1\n${VALIDATE_AUTHORIZED_KEYS}`, "validate", file]).status;
        };
        assert.equal(check(""), 0);
        assert.equal(check(renderAuthorizedKeys([newKey("valid")])), 0);
        assert.notEqual(check("ssh-ed25519 AAAAnotakey broken\n"), 0);
    });

    test("the whole push script passes shellcheck", (t) => {
        if (!needTools(t, "shellcheck")) return;
        const script = pushScript(ARTIFACTS["authorized_keys"]);
        const file = path.join(scratch, "push.sh");
        fs.writeFileSync(file, `#!/bin/bash\n${script}\n`);
        const result = run("shellcheck", ["--shell=bash", "--severity=style", file]);
        assert.equal(result.status, 0, `shellcheck:\n${result.stdout}${result.stderr}`);
    });
});

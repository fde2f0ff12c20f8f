/**
 * `anycast:sshPublicKeys` on every host, kept current without ever replacing one.
 *
 * A new Vultr instance gets the keys from its first-boot cloud-init (renderCloudInit). Vultr
 * replaces an instance when its `sshKeyIds` or `userData` change, so no Vultr SSH key ids are
 * used at all, and the Host ignores later userData changes. From then on every host, whether
 * Vultr-created or existing, receives the list as a pushed file (AUTHORIZED_KEYS_PATH), which
 * the push's apply step merges into the login user's `~/.ssh/authorized_keys` as a managed
 * block:
 *
 * - the block between the markers is rewritten with exactly the configured keys, so a key
 *   removed from the config loses access on every host at the next `pulumi up`;
 * - a line outside the block carrying a configured key (cloud-init's first-boot copy) is
 *   dropped, so the key is listed once, inside the block, and can be revoked later;
 * - every other line (an existing server's own keys) is kept as it is.
 */

/** Where the pushed list lives on every host (the managed block's source of truth). */
export const AUTHORIZED_KEYS_PATH = "/etc/anycast/authorized_keys";

export const AUTHORIZED_KEYS_BEGIN = "# BEGIN pulumi-anycast: anycast:sshPublicKeys (managed; edits inside are overwritten)";
export const AUTHORIZED_KEYS_END = "# END pulumi-anycast";

const KEY_LINE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/;

/** The pushed file: one OpenSSH public key per line (empty when no key is configured). */
export function renderAuthorizedKeys(keys: readonly string[]): string {
    for (const key of keys) {
        if (/[\r\n]/.test(key) || !KEY_LINE.test(key)) throw new Error(`"${key.slice(0, 40)}..." is not an OpenSSH public key line`);
    }
    return keys.map((k) => `${k}\n`).join("");
}

/**
 * A bash function `merge_authorized_keys <managed> <target> <owner>`: rewrite <target> with the
 * keys of <managed> as the managed block (see the module comment), atomically, owned by <owner>
 * with mode 0600 as sshd's StrictModes requires.
 */
export const MERGE_AUTHORIZED_KEYS_FUNCTION = `merge_authorized_keys() {
    local managed=$1 target=$2 owner=$3 tmp
    touch "$target"
    tmp=$(mktemp "$target.XXXXXX")
    awk -v managed="$managed" -v begin='${AUTHORIZED_KEYS_BEGIN}' -v end='${AUTHORIZED_KEYS_END}' '
        BEGIN { while ((getline line < managed) > 0) { split(line, f, " "); if (f[2] != "") ours[f[1] " " f[2]] = 1 } }
        $0 == begin { inside = 1; next }
        $0 == end { inside = 0; next }
        inside { next }
        { split($0, f, " "); if ((f[1] " " f[2]) in ours) next; print }
    ' "$target" > "$tmp"
    { echo '${AUTHORIZED_KEYS_BEGIN}'; cat "$managed"; echo '${AUTHORIZED_KEYS_END}'; } >> "$tmp"
    chmod 0600 "$tmp"
    chown "$owner:" "$tmp"
    mv -f "$tmp" "$target"
}`;

/**
 * The push's apply step: merge the pushed list into the SSH login user's authorized_keys. Under
 * sudo (a non-root deploy user) that is SUDO_USER, whose file sshd reads at the next login.
 */
export function installAuthorizedKeysScript(): string {
    return [
        MERGE_AUTHORIZED_KEYS_FUNCTION,
        "login_user=${SUDO_USER:-$(id -un)}",
        "login_home=$(getent passwd \"$login_user\" | cut -d: -f6)",
        "install -d -m 0700 -o \"$login_user\" -g \"$(id -g \"$login_user\")\" \"$login_home/.ssh\"",
        `merge_authorized_keys ${AUTHORIZED_KEYS_PATH} "$login_home/.ssh/authorized_keys" "$login_user"`,
    ].join("\n");
}

/** The push's validation: every line must be a public key ssh-keygen accepts (an empty list is valid). */
export const VALIDATE_AUTHORIZED_KEYS = "[ ! -s \"$new\" ] || ssh-keygen -l -f \"$new\" >/dev/null";

import { createHash } from "node:crypto";

/** The hex SHA-256 of a text: a push's trigger (components/push.ts), and what a saved plan compares. */
export function sha256(text: string): string {
    return createHash("sha256").update(text).digest("hex");
}

/**
 * BIRD's control socket protocol, as BIRD documents it (doc/reply_codes, and `birdc` is its own
 * client): the daemon greets with `0001 BIRD x.y.z ready.`; every reply line starts with a
 * four-digit code followed by `-` when more lines follow or a space on the reply's last line; a
 * line starting with a space continues the previous code. Codes 0xxx are command results (0000
 * ok, 0003 reconfigured, 0008/0009 already disabled/disabled, 0010/0011 already enabled/enabled),
 * 1xxx table rows (1002 a protocol), 2xxx table headers, 8xxx run-time errors and 9xxx parse
 * errors.
 *
 * Pure: the agent's socket client (agent/bird.ts) feeds it what it reads.
 */
import type { BirdProtocol } from "./agent-state";

export interface ReplyLine {
    code: number;
    text: string;
}

export interface BirdReply {
    /** The code of the last line: the reply's outcome. */
    code: number;
    lines: ReplyLine[];
}

/** Whether a reply's outcome is an error (8xxx run-time, 9xxx parse). */
export function isError(reply: BirdReply): boolean {
    return reply.code >= 8000;
}

/** Splits a byte stream of replies into whole replies (the greeting is one too). */
export class ReplyReader {
    private buffer = "";
    private lines: ReplyLine[] = [];
    private lastCode = 0;

    /** Feed text read from the socket; returns the replies it completes. */
    feed(chunk: string): BirdReply[] {
        this.buffer += chunk;
        const done: BirdReply[] = [];
        let nl: number;
        while ((nl = this.buffer.indexOf("\n")) >= 0) {
            const line = this.buffer.slice(0, nl);
            this.buffer = this.buffer.slice(nl + 1);
            const m = /^(\d{4})([ -])(.*)$/.exec(line);
            if (m) {
                this.lastCode = Number(m[1]);
                this.lines.push({ code: this.lastCode, text: m[3] });
                if (m[2] === " ") {
                    done.push({ code: this.lastCode, lines: this.lines });
                    this.lines = [];
                }
            } else {
                // A continuation line: " text", same code as the line before.
                this.lines.push({ code: this.lastCode, text: line.startsWith(" ") ? line.slice(1) : line });
            }
        }
        return done;
    }
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const TIME = /^\d{2}:\d{2}:\d{2}(\.\d+)?$/;

/** The rows of `show protocols` (code 1002 and its continuations). */
export function parseProtocolRows(reply: BirdReply): BirdProtocol[] {
    const out: BirdProtocol[] = [];
    for (const line of reply.lines) {
        if (line.code !== 1002) continue;
        const t = line.text.trim().split(/\s+/);
        if (t.length < 4) continue;
        const [name, proto, , state] = t;
        let i = 4;
        let since = t[i] ?? "";
        // `timeformat protocol iso long` prints a date and a time; the default a time or a date.
        if (DATE.test(since) && TIME.test(t[i + 1] ?? "")) {
            since = `${since} ${t[i + 1]}`;
            i += 2;
        } else {
            i += 1;
        }
        out.push({ name, proto, state, since, info: t.slice(i).join(" ") });
    }
    return out;
}

/** A reply as one line for a log or an error: its texts, joined. */
export function replyText(reply: BirdReply): string {
    return reply.lines.map((l) => l.text.trim()).filter((t) => t !== "").join(" | ") || `code ${String(reply.code).padStart(4, "0")}`;
}

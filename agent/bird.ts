/**
 * BIRD's control socket, spoken directly (components/core/health/birdctl.ts has the protocol):
 * one long-lived connection, commands one at a time, each with a timeout. A closed or broken
 * connection is opened again on the next command, so a BIRD restart costs one failed round.
 */
import * as net from "node:net";
import { BirdReply, isError, parseProtocolRows, ReplyReader, replyText } from "../components/core/health/birdctl";
import type { BirdObservation } from "../components/core/health/agent-state";

export class BirdControl {
    private socket?: net.Socket;
    private reader = new ReplyReader();
    private waiting?: { resolve: (r: BirdReply) => void; reject: (e: Error) => void };
    private greeted?: Promise<void>;
    private queue: Promise<unknown> = Promise.resolve();

    constructor(private readonly path: string, private readonly timeoutMs: number) {}

    /** Connected and greeted: a BIRD that stopped has closed the socket. */
    get connected(): boolean {
        return this.socket !== undefined && !this.socket.destroyed;
    }

    private drop(why: Error): void {
        this.socket?.destroy();
        this.socket = undefined;
        this.greeted = undefined;
        this.reader = new ReplyReader();
        const w = this.waiting;
        this.waiting = undefined;
        w?.reject(why);
    }

    private nextReply(): Promise<BirdReply> {
        return new Promise((resolve, reject) => {
            this.waiting = { resolve, reject };
        });
    }

    private connect(): Promise<void> {
        if (this.greeted) return this.greeted;
        const socket = net.createConnection(this.path);
        this.socket = socket;
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => {
            for (const reply of this.reader.feed(chunk)) {
                const w = this.waiting;
                this.waiting = undefined;
                w?.resolve(reply);
            }
        });
        socket.on("error", (e: NodeJS.ErrnoException) => {
            if (this.socket === socket) this.drop(new Error(e.code ?? e.message));
        });
        socket.on("close", () => {
            if (this.socket === socket) this.drop(new Error("BIRD closed the connection"));
        });
        // The greeting (0001 BIRD x.y.z ready.) is the first reply.
        this.greeted = this.nextReply().then((r) => {
            if (r.code !== 1) throw new Error(`unexpected greeting: ${replyText(r)}`);
        });
        return this.greeted;
    }

    private withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
        let timer: NodeJS.Timeout | undefined;
        const limit = new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
                const e = new Error(`no answer to ${what} within ${this.timeoutMs} ms`);
                this.drop(e);
                reject(e);
            }, this.timeoutMs);
        });
        return Promise.race([p, limit]).finally(() => clearTimeout(timer));
    }

    /** One command and its whole reply; throws when BIRD cannot be asked (the reply may still be an error code). */
    command(cmd: string): Promise<BirdReply> {
        const run = async () => {
            await this.withTimeout(this.connect(), "the connection");
            const reply = this.nextReply();
            this.socket!.write(`${cmd}\n`);
            return this.withTimeout(reply, cmd);
        };
        const result = this.queue.then(run, run);
        this.queue = result.catch(() => undefined);
        return result;
    }

    async observe(): Promise<BirdObservation> {
        try {
            const reply = await this.command("show protocols");
            if (isError(reply)) return { ok: false, detail: replyText(reply) };
            return { ok: true, protocols: parseProtocolRows(reply) };
        } catch (e) {
            return { ok: false, detail: (e as Error).message };
        }
    }

    /** Enable, then disable, protocols; returns what went wrong, one line each. */
    async switchProtocols(enable: string[], disable: string[]): Promise<string[]> {
        const problems: string[] = [];
        for (const [verb, names] of [["enable", enable], ["disable", disable]] as const) {
            for (const name of names) {
                try {
                    const reply = await this.command(`${verb} ${name}`);
                    // 0008/0009 disabled, 0010/0011 enabled (already or now).
                    if (isError(reply) || ![8, 9, 10, 11].includes(reply.lines[0]?.code ?? reply.code)) problems.push(`${verb} ${name}: ${replyText(reply)}`);
                } catch (e) {
                    problems.push(`${verb} ${name}: ${(e as Error).message}`);
                }
            }
        }
        return problems;
    }

    close(): void {
        this.drop(new Error("closed"));
    }
}

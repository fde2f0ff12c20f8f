/**
 * The one error the lab stops with on purpose: this machine or this config cannot be run, and
 * the message is one line saying what went wrong and what to do. The CLI prints it without a
 * stack trace; anything else escaping the lab is a bug of ours.
 */
export class LabPreconditionError extends Error {
    constructor(message: string, options?: { cause?: unknown }) {
        super(message.replace(/\s*\n\s*/g, " "), options);
        this.name = "LabPreconditionError";
    }
}

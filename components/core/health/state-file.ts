/**
 * BIRD's announcement switch: /etc/bird/anycast-state.conf, one `define ANYCAST_STATE = N;` line
 * that bird.conf includes (0 withdrawn, 1 draining: announced with GRACEFUL_SHUTDOWN, 2
 * announced). bird.conf's static protocols read it for their `disabled` setting, so it is what a
 * BIRD that starts, or an operator's `birdc configure`, applies. The health agent writes it on
 * every change of state before it switches the protocols over the control socket; anycast-net
 * seeds it with 0 at boot.
 */
import type { AnycastValue } from "./agent-state";

/** The content of the state file for one value. */
export function renderStateFile(value: AnycastValue): string {
    if (value !== 0 && value !== 1 && value !== 2) throw new Error(`ANYCAST_STATE must be 0, 1 or 2, not ${String(value)}`);
    return `define ANYCAST_STATE = ${value};   # 0 = withdrawn, 1 = draining (announce with GRACEFUL_SHUTDOWN 65535:0), 2 = announced\n`;
}

/** The value a state file holds, or undefined for anything else. */
export function parseStateFile(text: string): AnycastValue | undefined {
    const m = /^define ANYCAST_STATE = ([012]);/.exec(text);
    return m ? (Number(m[1]) as AnycastValue) : undefined;
}

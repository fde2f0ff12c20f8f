/** Quote a string as one word for a POSIX shell: single quotes, each ' as '\''. */
export function shellQuote(text: string): string {
    return `'${text.replace(/'/g, `'\\''`)}'`;
}

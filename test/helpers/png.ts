/**
 * Just enough of PNG to check a browser's screenshot: the signature, the header's size, and the
 * pixels of an 8-bit RGB or RGBA image without interlacing (what Chromium writes), unfiltered
 * with node's zlib. A test can then ask whether a colour was painted, not only whether a file
 * was written.
 */
import * as zlib from "node:zlib";

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface PngImage {
    width: number;
    height: number;
    bitDepth: number;
    colourType: number;
    /** Row-major RGB(A) bytes, `channels` per pixel, after unfiltering. */
    pixels: Buffer;
    channels: number;
}

/** The image's size from its header chunk (IHDR is always first), or an error saying what is wrong. */
export function pngSize(png: Buffer): { width: number; height: number } {
    if (png.length < 33 || !png.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error("not a PNG: no PNG signature");
    if (png.toString("latin1", 12, 16) !== "IHDR") throw new Error("not a PNG: the first chunk is not IHDR");
    return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

export function decodePng(png: Buffer): PngImage {
    const { width, height } = pngSize(png);
    const bitDepth = png[24];
    const colourType = png[25];
    if (bitDepth !== 8 || (colourType !== 2 && colourType !== 6) || png[28] !== 0) {
        throw new Error(`PNG with bit depth ${bitDepth}, colour type ${colourType}, interlace ${png[28]}: only 8-bit RGB(A) without interlace is read here`);
    }
    const idat: Buffer[] = [];
    for (let at = 8; at < png.length;) {
        const length = png.readUInt32BE(at);
        const type = png.toString("latin1", at + 4, at + 8);
        if (type === "IDAT") idat.push(png.subarray(at + 8, at + 8 + length));
        if (type === "IEND") break;
        at += 12 + length;
    }
    const raw = zlib.inflateSync(Buffer.concat(idat));
    const channels = colourType === 6 ? 4 : 3;
    const stride = width * channels;
    const pixels = Buffer.alloc(stride * height);
    for (let y = 0; y < height; y++) {
        const filter = raw[y * (stride + 1)];
        const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
        const out = pixels.subarray(y * stride, (y + 1) * stride);
        const up = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : Buffer.alloc(stride);
        for (let i = 0; i < stride; i++) {
            const a = i >= channels ? out[i - channels] : 0;
            const b = up[i];
            const c = i >= channels ? up[i - channels] : 0;
            let v = line[i];
            if (filter === 1) v += a;
            else if (filter === 2) v += b;
            else if (filter === 3) v += (a + b) >> 1;
            else if (filter === 4) {
                // Paeth: the neighbour nearest to a + b - c.
                const p = a + b - c;
                const pa = Math.abs(p - a);
                const pb = Math.abs(p - b);
                const pc = Math.abs(p - c);
                v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            } else if (filter !== 0) throw new Error(`PNG row ${y}: unknown filter ${filter}`);
            out[i] = v & 255;
        }
    }
    return { width, height, bitDepth, colourType, pixels, channels };
}

/** How many pixels have exactly this colour ("#RRGGBB"). */
export function countColour(img: PngImage, hex: string): number {
    const c = parseInt(hex.slice(1), 16);
    const [r, g, b] = [(c >> 16) & 255, (c >> 8) & 255, c & 255];
    let count = 0;
    for (let i = 0; i < img.pixels.length; i += img.channels) {
        if (img.pixels[i] === r && img.pixels[i + 1] === g && img.pixels[i + 2] === b) count++;
    }
    return count;
}

/** The last row (from the top) that holds a pixel other than `background`: where the page ends. */
export function lastPaintedRow(img: PngImage, background: string): number {
    const c = parseInt(background.slice(1), 16);
    const [r, g, b] = [(c >> 16) & 255, (c >> 8) & 255, c & 255];
    const stride = img.width * img.channels;
    for (let y = img.height - 1; y >= 0; y--) {
        for (let i = y * stride; i < (y + 1) * stride; i += img.channels) {
            if (img.pixels[i] !== r || img.pixels[i + 1] !== g || img.pixels[i + 2] !== b) return y;
        }
    }
    return -1;
}

// Paths inside shrinkwrap are "byte strings": JS strings whose code units are the raw bytes of the
// name (latin1 decoding). File names on Linux are bytes, not text; this keeps names that are not
// UTF-8 intact from readdir to every writer, and makes `<` on two paths a raw byte comparison.

const NON_ASCII = /[^\x00-\x7f]/;

/** Byte string of a Buffer (as returned by fs calls with encoding 'buffer'). */
export function fromBuffer(buf: Buffer): string {
  return buf.toString('latin1');
}

/** Buffer for fs calls: every fs call on a byte-string path must go through this. */
export function fsPath(bytes: string): Buffer {
  return Buffer.from(bytes, 'latin1');
}

/**
 * Argument for fs calls: the string itself when it is ASCII (the common case, and cheaper for
 * Node than a Buffer), else its bytes.
 */
export function fsArg(bytes: string): string | Buffer {
  return NON_ASCII.test(bytes) ? Buffer.from(bytes, 'latin1') : bytes;
}


/** Byte string of text the user typed (CLI arguments are UTF-8). */
export function fromText(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** True when every code unit is ASCII, so the byte string is already valid text. */
function isAscii(bytes: string): boolean {
  return !NON_ASCII.test(bytes);
}

/**
 * Text for humans and JSON. Valid UTF-8 is decoded; other bytes are shown as \xNN so that nothing
 * is silently replaced (backslashes are doubled in that case only, to stay unambiguous).
 */
export function display(bytes: string): string {
  if (isAscii(bytes)) return bytes;
  const buf = fsPath(bytes);
  try {
    return strictUtf8.decode(buf);
  } catch {
    let out = '';
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes.charCodeAt(i);
      if (c === 0x5c) out += '\\\\';
      else if (c < 0x20 || c >= 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
      else out += bytes[i];
    }
    return out;
  }
}

const NOT_PRINTABLE_ASCII = /[^\x20-\x7e]/;

/**
 * `display` for one line of text (plan lines, messages): control characters (a newline, an escape
 * sequence in a file name) shown as \xNN. The common case costs the one scan `display` makes too.
 */
export function displayLine(bytes: string): string {
  if (!NOT_PRINTABLE_ASCII.test(bytes)) return bytes;
  return display(bytes).replace(/[\x00-\x1f\x7f\u2028\u2029]/g, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'));
}

/** True when `display` had to escape (the name is not valid UTF-8). */
export function isValidUtf8(bytes: string): boolean {
  if (isAscii(bytes)) return true;
  try {
    strictUtf8.decode(fsPath(bytes));
    return true;
  } catch {
    return false;
  }
}

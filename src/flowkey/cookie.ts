/**
 * Finding one cookie in Cookie request headers.
 *
 * A user agent serialises its cookie-list as `name=value` pairs joined by "; " (RFC 6265 section
 * 5.4 step 4; grammar in section 4.2.1), and a cookie-value may be wrapped in DQUOTEs (section
 * 4.1.1). Servers are told to be liberal (section 5 intro), so whitespace around pairs, names and
 * values is tolerated and a pair without "=" is skipped. HTTP/1.1 clients send one Cookie field,
 * HTTP/2 ones may split it (RFC 9113 section 8.2.3); Node joins repeated Cookie fields with "; ",
 * and an array is accepted as well. Names compare case-sensitively; the first match wins, which is
 * the most specific cookie because user agents sort longer paths first (section 5.4 step 2).
 */

function findIn(header: string, name: string): string | undefined {
  let start = 0;
  while (start <= header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', start);
    if (eq >= 0 && eq < end && header.slice(start, eq).trim() === name) {
      let value = header.slice(eq + 1, end).trim();
      if (value.length >= 2 && value.charCodeAt(0) === 0x22 && value.charCodeAt(value.length - 1) === 0x22) {
        value = value.slice(1, -1);
      }
      return value;
    }
    start = end + 1;
  }
  return undefined;
}

/** The value of cookie `name`, or undefined when no Cookie header carries it. */
export function cookieValue(headers: string | readonly string[] | undefined, name: string): string | undefined {
  if (headers === undefined) return undefined;
  if (typeof headers === 'string') return findIn(headers, name);
  for (const h of headers) {
    const v = findIn(h, name);
    if (v !== undefined) return v;
  }
  return undefined;
}

//! Label values in the Prometheus text format: one small place for the escaping rules.
//!
//! The format escapes backslash, double quote and newline. Names are bytes (a Host-derived or
//! configured name may be invalid UTF-8); the text must be UTF-8. An invalid byte `b` becomes
//! U+FFFD followed by its two lowercase hex digits, and a U+FFFD that was in the name is
//! doubled, so that two different names never render to the same label value.
//!
//! Names that start with `::` are the module's own (`::overflow`, `::nogroups`, `::none`): a
//! configured name that starts with `::` is shown with a U+FFFD in front (a U+FFFD followed by
//! `:` appears in no other rendering), so a `server_name ::overflow` is not the overflow entry.

const REPLACEMENT: &str = "\u{FFFD}";

/// The prefix of the module's own names, which configured names cannot render to.
pub const RESERVED_PREFIX: &[u8] = b"::";

/// Appends one of the module's own names (`::overflow`...) as a label value, unescaped.
pub fn reserved_value(out: &mut Vec<u8>, name: &str) {
    debug_assert!(name.as_bytes().starts_with(RESERVED_PREFIX));
    out.extend_from_slice(name.as_bytes());
}

/// Appends `name` as the inside of a quoted label value.
pub fn label_value(out: &mut Vec<u8>, name: &[u8]) {
    if name.starts_with(RESERVED_PREFIX) {
        out.extend_from_slice(REPLACEMENT.as_bytes());
    }
    // The common case, a plain ASCII name with nothing to escape, is one copy.
    if name
        .iter()
        .all(|&b| b.is_ascii() && b != b'\\' && b != b'"' && b != b'\n')
    {
        out.extend_from_slice(name);
        return;
    }
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '"' => out.extend_from_slice(b"\\\""),
                '\n' => out.extend_from_slice(b"\\n"),
                '\u{FFFD}' => {
                    out.extend_from_slice(REPLACEMENT.as_bytes());
                    out.extend_from_slice(REPLACEMENT.as_bytes());
                }
                _ => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(REPLACEMENT.as_bytes());
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
    }
}

/// The label value (after unescaping the text format) that [`label_value`] gives for `name`:
/// the documented mapping, for tests and for readers that want the original bytes back.
pub fn display_name(name: &[u8]) -> String {
    let mut out = String::new();
    if name.starts_with(RESERVED_PREFIX) {
        out.push_str(REPLACEMENT);
    }
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\u{FFFD}' {
                out.push_str(REPLACEMENT);
            }
            out.push(c);
        }
        for &b in chunk.invalid() {
            out.push_str(REPLACEMENT);
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(n: &[u8]) -> String {
        let mut v = Vec::new();
        label_value(&mut v, n);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_the_three_characters() {
        assert_eq!(lv(b"a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn invalid_utf8_stays_distinct() {
        assert_eq!(lv(b"a\xffb"), "a\u{FFFD}ffb");
        assert_ne!(lv(b"a\xffb"), lv("a\u{FFFD}ffb".as_bytes()));
        assert_eq!(lv("\u{FFFD}".as_bytes()), "\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn configured_names_cannot_look_like_the_modules_own() {
        assert_eq!(lv(b"::overflow"), "\u{FFFD}::overflow");
        assert_eq!(display_name(b"::overflow"), "\u{FFFD}::overflow");
        assert_eq!(lv(b"a::b"), "a::b");
    }
}

//! JSON strings: one small place for the escaping rules.
//!
//! Names are bytes (a Host-derived or configured name may hold anything); the document must be
//! valid JSON whatever they are. nginx-module-vts copies 0x7F and invalid UTF-8 raw and leaves
//! some strings unescaped (its bug 6); here every string goes through [`string`]:
//!
//! - `"` and `\` are backslash-escaped; LF, CR, TAB, BS, FF get their short escapes; every other
//!   byte below 0x20, and 0x7F, is `\u00XX` with upper-case hex (nginx's escaper's spelling);
//! - valid UTF-8 is copied;
//! - an invalid byte `b` becomes U+FFFD followed by its two lower-case hex digits, and a U+FFFD
//!   that was in the name is doubled, so that two different names never read back the same.
//!
//! That is the mapping of [`super::escape::display_name`] (the Prometheus side's): a JSON reader
//! gets back exactly `display_name(name)` for a name given to [`name`] (which also marks a
//! configured name that starts with `::`, the prefix of the module's own names).
use super::escape::RESERVED_PREFIX;

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";
const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// True for the bytes that can be copied as they are, whatever surrounds them.
#[inline]
fn plain(b: u8) -> bool {
    (0x20..0x7F).contains(&b) && b != b'"' && b != b'\\'
}

/// Appends `s` as the inside of a JSON string (no quotes).
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    // The common case, a plain ASCII name with nothing to escape, is one copy.
    if s.iter().all(|&b| plain(b)) {
        out.extend_from_slice(s);
        return;
    }
    out.reserve(s.len() + 8);
    for chunk in s.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut i = 0;
        while i < valid.len() {
            // Runs of plain bytes and of multi-byte characters other than U+FFFD are copied
            // in one go; only the bytes that need a rule stop the run.
            let start = i;
            while i < valid.len() && (plain(valid[i]) || valid[i] >= 0x80) {
                if valid[i..].starts_with(REPLACEMENT) {
                    break;
                }
                i += 1;
            }
            out.extend_from_slice(&valid[start..i]);
            if i == valid.len() {
                break;
            }
            if valid[i..].starts_with(REPLACEMENT) {
                out.extend_from_slice(REPLACEMENT);
                out.extend_from_slice(REPLACEMENT);
                i += REPLACEMENT.len();
                continue;
            }
            control(out, valid[i]);
            i += 1;
        }
        for &b in chunk.invalid() {
            out.extend_from_slice(REPLACEMENT);
            out.push(LOWER_HEX[(b >> 4) as usize]);
            out.push(LOWER_HEX[(b & 15) as usize]);
        }
    }
}

/// One ASCII byte that is not plain: `"`, `\`, a control character or DEL.
fn control(out: &mut Vec<u8>, b: u8) {
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0C => b'f',
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(UPPER_HEX[(b >> 4) as usize]);
            out.push(UPPER_HEX[(b & 15) as usize]);
            return;
        }
    };
    out.push(b'\\');
    out.push(short);
}

/// Appends a configured name (zone, group, peer, sum key) as the inside of a JSON string: as
/// [`string`], with a U+FFFD in front of a name that starts with `::`, so that no configured
/// name reads as one of the module's own (`::nogroups`, `::overflow`, `::none`).
pub fn name(out: &mut Vec<u8>, s: &[u8]) {
    if s.starts_with(RESERVED_PREFIX) {
        out.extend_from_slice(REPLACEMENT);
    }
    string(out, s);
}

/// Appends `"` + [`name`] + `"`.
pub fn quoted_name(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    name(out, s);
    out.push(b'"');
}

/// Appends `"` + [`string`] + `"`.
pub fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    string(out, s);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::super::escape::display_name;
    use super::*;

    fn esc(s: &[u8]) -> String {
        let mut v = Vec::new();
        string(&mut v, s);
        String::from_utf8(v).expect("the escaped text is UTF-8")
    }

    fn esc_name(s: &[u8]) -> String {
        let mut v = Vec::new();
        name(&mut v, s);
        String::from_utf8(v).expect("the escaped text is UTF-8")
    }

    /// A JSON string reader written from RFC 8259 (not from the escaper): the inside of a
    /// string, without its quotes. Errors on anything a strict parser rejects.
    pub(crate) fn read_json_string(s: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            match c {
                '"' => return Err("bare quote".into()),
                '\u{0}'..='\u{1F}' => return Err(format!("raw control {:?}", c)),
                '\\' => match it.next() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('/') => out.push('/'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{C}'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some('u') => {
                        let hex: String = it.by_ref().take(4).collect();
                        if hex.len() != 4 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                            return Err(format!("bad \\u{hex}"));
                        }
                        let v = u32::from_str_radix(&hex, 16).unwrap();
                        // Surrogates never come out of the escaper: refuse them here.
                        out.push(char::from_u32(v).ok_or("surrogate escape")?);
                    }
                    other => return Err(format!("bad escape {other:?}")),
                },
                c => out.push(c),
            }
        }
        Ok(out)
    }

    #[test]
    fn the_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"example.org", "example.org"),
            (b"", ""),
            (b"a\"b", "a\\\"b"),
            (b"a\\b", "a\\\\b"),
            (b"/", "/"),
            (b"\n\r\t\x08\x0c", "\\n\\r\\t\\b\\f"),
            (b"\x00", "\\u0000"),
            (b"\x01\x1f", "\\u0001\\u001F"),
            (b"\x0b\x1b", "\\u000B\\u001B"),
            (b"\x7f", "\\u007F"),
            (b" ~", " ~"),
            ("é€😀".as_bytes(), "é€😀"),
            ("\u{FFFD}".as_bytes(), "\u{FFFD}\u{FFFD}"),
            (
                "a\u{FFFD}b\u{FFFD}".as_bytes(),
                "a\u{FFFD}\u{FFFD}b\u{FFFD}\u{FFFD}",
            ),
            (b"\xff", "\u{FFFD}ff"),
            (b"a\x80b", "a\u{FFFD}80b"),
            (b"\xc3", "\u{FFFD}c3"),
            // A truncated 3-byte sequence is one invalid chunk of two bytes.
            (b"\xe2\x82x", "\u{FFFD}e2\u{FFFD}82x"),
            // Surrogates encoded in UTF-8 are invalid.
            (b"\xed\xa0\x80", "\u{FFFD}ed\u{FFFD}a0\u{FFFD}80"),
            (b"\xc3\xa9\xff\"", "é\u{FFFD}ff\\\""),
        ];
        for (input, want) in cases {
            assert_eq!(esc(input), *want, "{input:?}");
        }
    }

    #[test]
    fn names_cannot_look_like_the_modules_own() {
        assert_eq!(esc_name(b"::nogroups"), "\u{FFFD}::nogroups");
        assert_eq!(esc_name(b":x"), ":x");
        assert_eq!(esc_name(b"a::b"), "a::b");
        assert_eq!(esc(b"::nogroups"), "::nogroups");
        let mut v = Vec::new();
        quoted_name(&mut v, b"::\"");
        assert_eq!(v, "\"\u{FFFD}::\\\"\"".as_bytes());
        v.clear();
        quoted(&mut v, b"\x01");
        assert_eq!(v, b"\"\\u0001\"");
    }

    #[test]
    fn every_byte_alone_and_in_names_reads_back_as_display_name() {
        for b in 0..=255u8 {
            for input in [
                vec![b],
                vec![b'a', b, b'z'],
                vec![b, b],
                vec![0xC3, b],       // a lead byte, then b
                vec![0xE2, 0x82, b], // two bytes of a 3-byte sequence, then b
                vec![b, 0xA9],
                [&[b][..], "\u{FFFD}".as_bytes()].concat(),
                [b"::".as_slice(), &[b]].concat(),
            ] {
                let e = esc_name(&input);
                // No raw control character, no unescaped quote: the reader says so.
                let back = read_json_string(&e).unwrap_or_else(|err| panic!("{input:?} -> {e:?}: {err}"));
                assert_eq!(back, display_name(&input), "{input:?} -> {e:?}");
                assert!(!e.contains('\u{7F}'), "{input:?} -> {e:?}");
                if b < 0x20 || b == 0x7F {
                    assert!(!e.as_bytes().contains(&b), "{input:?} -> {e:?}");
                }
            }
        }
    }

    #[test]
    fn every_pair_of_bytes_maps_injectively() {
        // All two-byte names: no two read back the same (display_name is injective, and the
        // reader gives back display_name).
        let mut seen = std::collections::HashMap::new();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let back = read_json_string(&esc(&[a, b])).unwrap();
                if let Some(prev) = seen.insert(back.clone(), [a, b]) {
                    panic!("{prev:?} and {:?} both read back as {back:?}", [a, b]);
                }
            }
        }
    }

    #[test]
    fn a_strict_parser_agrees() {
        // serde_json (a dev-dependency) as a second reader: the quoted text parses as a string.
        let mut all: Vec<u8> = (0..=255u8).collect();
        all.extend_from_slice("\u{FFFD}é".as_bytes());
        let mut v = Vec::new();
        quoted(&mut v, &all);
        let s: String = serde_json::from_slice(&v).unwrap();
        assert_eq!(s, display_name(&all));
    }

    #[test]
    fn plain_names_are_copied() {
        let n: Vec<u8> = (0x20..0x7F).filter(|&b| b != b'"' && b != b'\\').collect();
        assert_eq!(esc(&n).as_bytes(), &n[..]);
    }
}

//! Configuration syntax, without nginx: the argument grammars of nginx's own parsers (time,
//! size, offset, integer, fixed point), ported byte for byte so that a value nginx accepts is
//! accepted here with the same result and a value it rejects is rejected, and the directive
//! parsers of nginx-module-vts ([`vozlt`]).
//!
//! Reference: `reference/nginx-module-vts.md`, Appendix A (nginx primitives).
pub mod vozlt;

/// nginx's `NGX_MAX_INT_T_VALUE` (and `NGX_MAX_SIZE_T_VALUE`, `NGX_MAX_OFF_T_VALUE`) on 64-bit
/// platforms: every parser below rejects results beyond it.
const MAX: i64 = i64::MAX;

/// Decimal digits only, at most `MAX` (nginx's `ngx_atoi`, `ngx_atosz`, `ngx_atoof`): no sign,
/// no spaces; empty is an error.
pub fn atoi(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(v as u64)
}

/// A number with a `k`/`K` or `m`/`M` suffix (nginx `ngx_parse_size`; no `g` in nginx 1.28).
pub fn parse_size(s: &[u8]) -> Option<u64> {
    parse_scaled(s, b"km")
}

/// A number with a `k`/`K`, `m`/`M` or `g`/`G` suffix (nginx `ngx_parse_offset`).
pub fn parse_offset(s: &[u8]) -> Option<u64> {
    parse_scaled(s, b"kmg")
}

fn parse_scaled(s: &[u8], units: &[u8]) -> Option<u64> {
    let (&last, rest) = s.split_last()?;
    let unit = last.to_ascii_lowercase();
    let (digits, shift) = match units.iter().position(|&u| u == unit) {
        Some(i) => (rest, 10 * (i as u32 + 1)),
        None => (s, 0),
    };
    let v = atoi(digits)?;
    // nginx compares with MAX / scale before multiplying: the product never exceeds MAX.
    (v <= (MAX as u64) >> shift).then_some(v << shift)
}

/// nginx `ngx_parse_time(value, 0)`: a duration in milliseconds.
///
/// Components are digits followed by a unit, in strictly descending order: `w d h m s ms`
/// (`y` and `M` are rejected in this mode). A trailing bare number is seconds and is not
/// order-checked (`1s30` = 31 s, as in nginx). A space ends a bare number as seconds (`"30 15"`
/// = 45 s); spaces after a unit are skipped. Empty, no digit at all, any other character, or a
/// result beyond `i64::MAX` is an error.
pub fn parse_time_ms(s: &[u8]) -> Option<u64> {
    // The order nginx's state machine enforces; each component must be after the previous one.
    #[derive(Clone, Copy, PartialEq, PartialOrd)]
    enum Step {
        Month, // the starting point in ms mode: years and months are already "passed"
        Week,
        Day,
        Hour,
        Min,
        Sec,
        Msec,
        Last,
    }
    let cutoff = MAX / 10;
    let cutlim = MAX % 10;
    let (mut value, mut total, mut valid) = (0i64, 0i64, false);
    let mut step = Step::Month;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c.is_ascii_digit() {
            let d = i64::from(c - b'0');
            if value >= cutoff && (value > cutoff || d > cutlim) {
                return None;
            }
            value = value * 10 + d;
            valid = true;
            continue;
        }
        let (next, seconds) = match c {
            b'w' => (Step::Week, 60 * 60 * 24 * 7),
            b'd' => (Step::Day, 60 * 60 * 24),
            b'h' => (Step::Hour, 60 * 60),
            b'm' if s.get(i) == Some(&b's') => {
                i += 1;
                (Step::Msec, 0)
            }
            b'm' => (Step::Min, 60),
            b's' => (Step::Sec, 1),
            // A space after a bare number: that number is seconds; nothing may follow but a
            // bare number (nginx allows it only before the seconds step).
            b' ' if step < Step::Sec => (Step::Last, 1),
            _ => return None,
        };
        if next != Step::Last && step >= next {
            return None;
        }
        step = next;
        let (scale, max) = if step == Step::Msec {
            (1, MAX)
        } else {
            (seconds * 1000, MAX / seconds / 1000)
        };
        if value > max {
            return None;
        }
        value *= scale;
        if total > MAX - value {
            return None;
        }
        total += value;
        value = 0;
        while s.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    if !valid || value > MAX / 1000 {
        return None;
    }
    value *= 1000;
    if total > MAX - value {
        return None;
    }
    Some((total + value) as u64)
}

/// nginx `ngx_atofp(value, len, point)`: digits with at most one `.` and at most `point`
/// fractional digits (`1.` and `.5` are allowed), times 10^point. No sign, exponent or spaces;
/// empty is an error; `.` alone is 0.
pub fn atofp(s: &[u8], point: u32) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let cutoff = MAX / 10;
    let cutlim = MAX % 10;
    let (mut value, mut point, mut dot) = (0i64, point, false);
    for &c in s {
        // nginx checks this before looking at the byte: nothing may follow the last decimal.
        if point == 0 {
            return None;
        }
        if c == b'.' {
            if dot {
                return None;
            }
            dot = true;
            continue;
        }
        if !c.is_ascii_digit() {
            return None;
        }
        let d = i64::from(c - b'0');
        if value >= cutoff && (value > cutoff || d > cutlim) {
            return None;
        }
        value = value * 10 + d;
        point -= u32::from(dot);
    }
    for _ in 0..point {
        if value > cutoff {
            return None;
        }
        value *= 10;
    }
    Some(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;
    const MIN: u64 = 60 * S;
    const H: u64 = 60 * MIN;
    const D: u64 = 24 * H;

    #[test]
    fn time_ms_units_and_order() {
        let ok: &[(&str, u64)] = &[
            ("1h30m", H + 30 * MIN),
            ("1h 30m", H + 30 * MIN),
            ("1h   30m  ", H + 30 * MIN),
            ("500ms", 500),
            ("0", 0),
            ("60", 60 * S),
            ("1d2h", D + 2 * H),
            ("1w2d", 9 * D),
            ("1m5ms", MIN + 5),
            ("1s500ms", 1500),
            ("10s", 10 * S),
            // A trailing bare number is seconds and is not order-checked (nginx does the same).
            ("1h30", H + 30 * S),
            ("1s30", 31 * S),
            ("500ms5", 5500),
            // A space ends a bare number as seconds; a further bare number adds seconds.
            ("30 15", 45 * S),
            ("5 ", 5 * S),
            (" 5", 5 * S),
            // A unit without digits adds 0 once some digit was seen.
            ("1hm", H),
            ("9223372036854775", 9_223_372_036_854_775_000),
            ("9223372036854775807ms", i64::MAX as u64),
        ];
        for &(t, ms) in ok {
            assert_eq!(parse_time_ms(t.as_bytes()), Some(ms), "{t:?}");
        }
        let bad = [
            "",
            "30m1h",
            "5x",
            "1y",
            "1M",
            "-1",
            "+1",
            "h",
            "ms",
            " ",
            "1s5 ",
            "5 m",
            "1h1h",
            "1ms1s",
            "1.5s",
            "9223372036854776",
            "9223372036854775807",
            "9223372036854775808ms",
            "1ms 5ms",
        ];
        for t in bad {
            assert_eq!(parse_time_ms(t.as_bytes()), None, "{t:?}");
        }
    }

    #[test]
    fn size_and_offset() {
        assert_eq!(parse_size(b"1048575"), Some(1_048_575));
        assert_eq!(parse_size(b"32k"), Some(32_768));
        assert_eq!(parse_size(b"1K"), Some(1024));
        assert_eq!(parse_size(b"2m"), Some(2 << 20));
        assert_eq!(parse_size(b"1M"), Some(1 << 20));
        assert_eq!(parse_size(b"9223372036854775807"), Some(i64::MAX as u64));
        for t in [
            "",
            "k",
            "1g",
            "1G",
            "1mb",
            "-1",
            " 1",
            "1 ",
            "9223372036854775808",
            "8796093022208m",
        ] {
            assert_eq!(parse_size(t.as_bytes()), None, "{t:?}");
        }
        assert_eq!(parse_size(b"8796093022207m"), Some(8_796_093_022_207 << 20));
        assert_eq!(parse_offset(b"1g"), Some(1 << 30));
        assert_eq!(parse_offset(b"10M"), Some(10 << 20));
        assert_eq!(parse_offset(b"0"), Some(0));
        assert_eq!(parse_offset(b"8589934591g"), Some(8_589_934_591 << 30));
        for t in ["", "g", "1t", "x", "-1", "8589934592g"] {
            assert_eq!(parse_offset(t.as_bytes()), None, "{t:?}");
        }
    }

    #[test]
    fn atoi_and_atofp() {
        assert_eq!(atoi(b"00200"), Some(200));
        assert_eq!(atoi(b"9223372036854775807"), Some(i64::MAX as u64));
        for t in [
            "",
            "+1",
            "-1",
            "1x",
            "9223372036854775808",
            "99999999999999999999",
        ] {
            assert_eq!(atoi(t.as_bytes()), None, "{t:?}");
        }
        let ok: &[(&str, u64)] = &[
            ("1", 1000),
            ("0.005", 5),
            ("1.", 1000),
            (".5", 500),
            (".", 0),
            ("2.5", 2500),
            ("1.000", 1000),
            ("0.0", 0),
            ("9223372036854775.807", i64::MAX as u64),
        ];
        for &(t, v) in ok {
            assert_eq!(atofp(t.as_bytes(), 3), Some(v), "{t:?}");
        }
        let bad = [
            "", "1.2345", "1.0000", "1..5", "1.000.", "-1", "+1", "1e3", "1,5", "abc", " 1",
        ];
        for t in bad {
            assert_eq!(atofp(t.as_bytes(), 3), None, "{t:?}");
        }
        assert_eq!(atofp(b"9223372036854776", 3), None);
        assert_eq!(atofp(b"9223372036854775.808", 3), None);
    }
}

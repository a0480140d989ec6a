//! Which output a request to a status location asks for: the URI's `/format/...` suffix and
//! `/control` (nginx-module-vts's rules, reference section 3.1), and the `Accept` header.
//! Pure: the nginx layer passes the bytes in.
use super::prometheus;
use crate::conf::vozlt::DisplayFormat;

/// What a status request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The seed's Prometheus dialect (a `vts_status` location).
    Seed(prometheus::Format),
    /// nginx-module-vts's Prometheus dialect (a display location).
    Vozlt(prometheus::Format),
    Json,
    Jsonp,
    Html,
}

impl Output {
    pub fn content_type(self) -> &'static str {
        match self {
            Output::Seed(f) => f.content_type(),
            Output::Vozlt(prometheus::Format::Text) => "text/plain",
            Output::Vozlt(f) => f.content_type(),
            Output::Json => "application/json",
            Output::Jsonp => "application/javascript",
            Output::Html => "text/html",
        }
    }

    /// Whether the body depends on the `Accept` header (the Prometheus answers).
    pub fn varies(self) -> bool {
        matches!(self, Output::Seed(_) | Output::Vozlt(_))
    }
}

/// The `/format/...` suffix of a display location's URI (reference 3.1): the first `/` from
/// which at least 12 bytes remain and that starts, in any case, `/format/` and a known type.
pub fn format_suffix(uri: &[u8]) -> Option<DisplayFormat> {
    const TYPES: [(&[u8], DisplayFormat); 4] = [
        (b"jsonp", DisplayFormat::Jsonp),
        (b"json", DisplayFormat::Json),
        (b"html", DisplayFormat::Html),
        (b"prometheus", DisplayFormat::Prometheus),
    ];
    let mut i = 0;
    while i + 12 <= uri.len() {
        if uri[i] == b'/' && uri[i..].len() >= 8 && uri[i..i + 8].eq_ignore_ascii_case(b"/format/") {
            let rest = &uri[i + 8..];
            for (word, f) in TYPES {
                if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word) {
                    return Some(f);
                }
            }
        }
        i += 1;
    }
    None
}

/// Whether a display location's URI asks for the control API (reference 3.1): it ends in
/// `/control` (any case) and has another `/` before that one.
pub fn is_control(uri: &[u8]) -> bool {
    let Some(second) = uri.iter().skip(1).position(|&b| b == b'/').map(|p| p + 1) else {
        return false;
    };
    let tail = &uri[second..];
    tail.len() >= 8 && tail[tail.len() - 8..].eq_ignore_ascii_case(b"/control")
}

/// Whether an `Accept` header prefers JSON to the Prometheus text (for a `vts_status` location).
pub fn prefers_json(accept: &[u8]) -> bool {
    let [json, text, om] = super::accept::qualities(
        accept,
        ["application/json", "text/plain", "application/openmetrics-text"],
    );
    json > 0.0 && json > text.max(om)
}

impl Output {
    /// The output a request to a status location asks for: a display location's (`display`;
    /// `default` its `display_format`) or a `vts_status` location's, by the URI's suffix and
    /// the `Accept` header.
    pub fn of(display: bool, default: Option<DisplayFormat>, uri: &[u8], accept: &[u8]) -> Output {
        let suffix = format_suffix(uri);
        let prom = prometheus::negotiate(accept);
        if !display {
            // `vts_status`: the seed's text, or JSON when the URI or the Accept header asks.
            return match suffix {
                Some(DisplayFormat::Json) => Output::Json,
                Some(DisplayFormat::Jsonp) => Output::Jsonp,
                Some(DisplayFormat::Html) => Output::Html,
                Some(DisplayFormat::Prometheus) => Output::Seed(prom),
                None if prefers_json(accept) => Output::Json,
                None => Output::Seed(prom),
            };
        }
        match suffix.or(default).unwrap_or(DisplayFormat::Json) {
            DisplayFormat::Json => Output::Json,
            DisplayFormat::Jsonp => Output::Jsonp,
            DisplayFormat::Html => Output::Html,
            DisplayFormat::Prometheus => Output::Vozlt(prom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn suffixes_as_the_c_module_reads_them() {
        use DisplayFormat::*;
        for (uri, want) in [
            (&b"/status"[..], None),
            (b"/status/format/json", Some(Json)),
            (b"/status/format/jsonp", Some(Jsonp)),
            (b"/status/format/JSON", Some(Json)),
            (b"/status/format/jsonx", Some(Json)),
            (b"/status/format/html5", Some(Html)),
            (b"/status/format/prometheus", Some(Prometheus)),
            (b"/status/format/xml", None),
            (b"/status/format/", None),
            (b"/format/json/anything", Some(Json)),
            (b"/x/format/json", Some(Json)),
            // Fewer than 12 bytes from the `/`: not looked at.
            (b"/format/jso", None),
            (b"/format/json", Some(Json)),
        ] {
            assert_eq!(format_suffix(uri), want, "{}", String::from_utf8_lossy(uri));
        }
    }

    #[test]
    fn control_needs_a_second_slash() {
        assert!(is_control(b"/status/control"));
        assert!(is_control(b"/a/control"));
        assert!(is_control(b"/status/format/json/control"));
        assert!(is_control(b"/status/CONTROL"));
        assert!(!is_control(b"/control"));
        assert!(!is_control(b"/status/controls"));
        assert!(!is_control(b""));
    }

    #[test]
    fn which_output() {
        let json = b"application/json";
        assert_eq!(Output::of(true, None, b"/status", b""), Output::Json);
        assert_eq!(
            Output::of(true, Some(DisplayFormat::Prometheus), b"/status", b""),
            Output::Vozlt(prometheus::Format::Text)
        );
        assert_eq!(
            Output::of(
                true,
                Some(DisplayFormat::Prometheus),
                b"/status/format/jsonp",
                b""
            ),
            Output::Jsonp
        );
        // A display location ignores Accept for its choice of format.
        assert_eq!(Output::of(true, None, b"/status", b"text/plain"), Output::Json);
        assert_eq!(
            Output::of(false, None, b"/status", b""),
            Output::Seed(prometheus::Format::Text)
        );
        assert_eq!(Output::of(false, None, b"/status", json), Output::Json);
        assert_eq!(Output::of(false, None, b"/status/format/json", b""), Output::Json);
        assert_eq!(
            Output::of(false, None, b"/status", b"application/json;q=0.1, text/plain"),
            Output::Seed(prometheus::Format::Text)
        );
    }

    proptest! {
        // Hostile request lines and headers: any bytes, any length, never a panic, and the
        // answer is one of the outputs.
        #[test]
        fn any_bytes_get_an_answer(
            uri in proptest::collection::vec(any::<u8>(), 0..300),
            accept in proptest::collection::vec(any::<u8>(), 0..300),
            display in any::<bool>(),
        ) {
            let _ = is_control(&uri);
            let out = Output::of(display, None, &uri, &accept);
            prop_assert!(!out.content_type().is_empty());
        }

        #[test]
        fn a_suffix_anywhere_after_a_slash_is_found(
            prefix in "(/[a-z]{0,6}){0,3}",
            word in prop::sample::select(vec!["json", "JSONP", "html", "Prometheus"]),
            tail in "[a-z/]{0,8}",
        ) {
            let uri = format!("{prefix}/format/{word}{tail}");
            prop_assert!(format_suffix(uri.as_bytes()).is_some(), "{}", uri);
        }
    }
}

//! Response compression at the edge: which coding a client gets
//! ([`negotiate`]), whether a response may be compressed at all
//! ([`compressible`], from [`ResponseFacts`]), and a streaming [`Encoder`]
//! that a byte-relaying loop feeds chunk by chunk with bounded memory.
//!
//! Pure functions and one encoder, shared by the HTTP/1.1, h2 and h3 front
//! ends so the rules cannot drift. A front end that compresses a response
//! must also: set `Content-Encoding` to [`Coding::token`], drop
//! `Content-Length` (the body is then chunked or framed), add
//! `Vary: Accept-Encoding` (also when it chose not to compress because of the
//! request), weaken a strong `ETag` (`W/"…"`), and call [`Encoder::flush`]
//! whenever the replica pauses, so event streams keep flowing.

use std::io::{self, Write};

/// Bodies with a known `Content-Length` below this many bytes are sent as
/// they are: the coding's framing would eat most of the gain.
pub(crate) const MIN_LENGTH: u64 = 1024;

/// gzip level (0–9): 5, Caddy's default, a good ratio at streaming speed.
pub(crate) const GZIP_LEVEL: u32 = 5;

/// zstd level: 3, the library's default.
pub(crate) const ZSTD_LEVEL: i32 = 3;

/// zstd window, log2 bytes: 20 (1 MiB) rather than level 3's 21. zstd
/// allocates the whole window and its tables on the first write, whatever
/// the body's size: 2.7 MiB of C heap per stream (3.7 MiB with 21).
pub(crate) const ZSTD_WINDOW_LOG: u32 = 20;

/// brotli quality (0–11): 4, fast enough to compress on the fly.
pub(crate) const BROTLI_QUALITY: u32 = 4;

/// brotli window, log2 bytes: 18 (256 KiB). The Rust encoder's memory at
/// quality 4 grows to about ten times its window on long streams: 3.4 MiB
/// per stream with 18, 10 MiB with 20, 35 MiB with the default 22; the
/// ratio lost is nil below 256 KiB and ~5% at 1 MiB.
pub(crate) const BROTLI_WINDOW: u32 = 18;

/// The brotli encoder's own output staging buffer, bytes.
const BROTLI_BUFFER: usize = 16 * 1024;

/// A content coding berth can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Zstd,
    Br,
    Gzip,
}

impl Coding {
    /// The coding's token, for `Content-Encoding`: `zstd`, `br` or `gzip`.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The coding an `Accept-Encoding` token names (case-insensitive;
    /// `x-gzip` is gzip, RFC 9110 §8.4.1.3).
    fn from_token(token: &[u8]) -> Option<Coding> {
        [
            (&b"zstd"[..], Coding::Zstd),
            (b"br", Coding::Br),
            (b"gzip", Coding::Gzip),
            (b"x-gzip", Coding::Gzip),
        ]
        .into_iter()
        .find(|(name, _)| token.eq_ignore_ascii_case(name))
        .map(|(_, coding)| coding)
    }
}

/// The coding to use for a response, from the request's `Accept-Encoding`
/// field values (each field's value; several fields combine) and the codings
/// the route allows, in the route's order of preference.
///
/// A coding is acceptable when the client lists it with q > 0, or does not
/// list it and lists `*` with q > 0. The highest q wins; equal q go to the
/// route's order. An element with a malformed q is ignored; a coding listed
/// twice takes its lowest q (a refusal wins). `identity` is never forced:
/// `identity;q=0` alone gives `None`. No field at all gives `None` too (the
/// body is then sent as it is, which every client accepts in practice).
pub(crate) fn negotiate<'a>(
    accept: impl IntoIterator<Item = &'a [u8]>,
    allowed: &[Coding],
) -> Option<Coding> {
    // q in thousandths for each coding listed by name (index `Coding as
    // usize`), and for `*`.
    let mut listed: [Option<u16>; 3] = [None; 3];
    let mut star: Option<u16> = None;
    for value in accept {
        for element in value.split(|&b| b == b',') {
            let mut parts = element.split(|&b| b == b';');
            let token = parts.next().unwrap_or_default().trim_ascii();
            let slot = if token == b"*" {
                &mut star
            } else if let Some(coding) = Coding::from_token(token) {
                &mut listed[coding as usize]
            } else {
                continue;
            };
            let Some(q) = qvalue(parts) else { continue };
            *slot = Some(slot.map_or(q, |old| old.min(q)));
        }
    }
    let mut best: Option<(Coding, u16)> = None;
    for &coding in allowed {
        let q = listed[coding as usize].or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, top)| q > top) {
            best = Some((coding, q));
        }
    }
    best.map(|(coding, _)| coding)
}

/// The q of an element's parameters in thousandths (1000 without a `q`),
/// or `None` when the q is malformed.
fn qvalue<'a>(params: impl Iterator<Item = &'a [u8]>) -> Option<u16> {
    let mut q = 1000;
    for param in params {
        let mut kv = param.splitn(2, |&b| b == b'=');
        let name = kv.next().unwrap_or_default().trim_ascii();
        if name.eq_ignore_ascii_case(b"q") {
            q = parse_q(kv.next()?.trim_ascii())?;
        }
    }
    Some(q)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in
/// thousandths.
fn parse_q(text: &[u8]) -> Option<u16> {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &[][..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        let digit = fraction.get(i).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Facts of a response head that decide whether it is compressed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ResponseFacts<'a> {
    /// The response's status code.
    pub(crate) status: u16,
    /// Whether the request was a HEAD.
    pub(crate) head_request: bool,
    /// The `Content-Type` value, parameters included, if any.
    pub(crate) content_type: Option<&'a [u8]>,
    /// Whether `Content-Encoding` is present with a value other than
    /// `identity`: the body is already encoded.
    pub(crate) content_encoding: bool,
    /// The `Content-Length`, bytes, if known.
    pub(crate) content_length: Option<u64>,
    /// Whether `Content-Range` is present.
    pub(crate) content_range: bool,
    /// Whether `Cache-Control` carries `no-transform`.
    pub(crate) cache_control_no_transform: bool,
}

/// Whether a response may be compressed.
///
/// Status: any final status that carries a body: 2xx, 3xx, and the app's
/// own 4xx/5xx pages (HTML or JSON, worth compressing) — but not 1xx, 204,
/// 205, 304 (no body) nor 206 (a byte range of the identity body). Also not
/// for a HEAD, a body already encoded, a `Content-Range`, `Cache-Control:
/// no-transform`, a known length below [`MIN_LENGTH`], or a content type
/// that is missing or not text-like (see [`compressible_type`]).
pub(crate) fn compressible(facts: &ResponseFacts<'_>) -> bool {
    let has_body = facts.status >= 200 && !matches!(facts.status, 204 | 205 | 206 | 304);
    has_body
        && !facts.head_request
        && !facts.content_encoding
        && !facts.content_range
        && !facts.cache_control_no_transform
        && facts.content_length.is_none_or(|n| n >= MIN_LENGTH)
        && facts.content_type.is_some_and(compressible_type)
}

/// Whether a `Content-Type` is text-like: `text/*`, JSON, JavaScript, XML
/// (and `+json`/`+xml` suffixes), SVG, icons, wasm, YAML and the uncompressed
/// font formats (ttf, otf, eot). Parameters ignored, case-insensitive.
/// Everything else — images, audio, video, archives, `octet-stream`, PDF,
/// woff/woff2 (already compressed) — is not.
fn compressible_type(content_type: &[u8]) -> bool {
    const TYPES: &str = "application/json application/x-ndjson application/javascript \
        application/x-javascript application/ecmascript application/xml application/wasm \
        application/yaml application/x-yaml application/vnd.ms-fontobject application/x-font-ttf \
        application/x-font-otf application/x-font-opentype font/ttf font/otf font/opentype \
        font/sfnt image/svg+xml image/x-icon image/vnd.microsoft.icon image/bmp";
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let starts = |prefix: &[u8]| {
        essence.len() > prefix.len() && essence[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    let ends = |suffix: &[u8]| {
        essence.len() > suffix.len()
            && essence[essence.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    starts(b"text/")
        || (starts(b"application/") && (ends(b"+json") || ends(b"+xml")))
        || TYPES
            .split_ascii_whitespace()
            .any(|t| essence.eq_ignore_ascii_case(t.as_bytes()))
}

/// A streaming encoder: bytes in, compressed bytes out, no whole-body
/// buffering. Each stream holds the coding's state — measured peaks: gzip
/// 0.5 MiB, zstd 2.7 MiB, brotli 2.5–3.4 MiB (see the window consts) — plus
/// at most one push's output, which every call hands over to the caller.
pub(crate) struct Encoder {
    inner: Inner,
}

enum Inner {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    /// A new stream in `coding`. Fails only when zstd cannot set up its
    /// context.
    pub(crate) fn new(coding: Coding) -> io::Result<Self> {
        let inner = match coding {
            Coding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(GZIP_LEVEL),
            )),
            Coding::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
                e.window_log(ZSTD_WINDOW_LOG)?;
                Inner::Zstd(e)
            }
            Coding::Br => Inner::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                BROTLI_WINDOW,
            ))),
        };
        Ok(Encoder { inner })
    }

    /// Compresses `data`, appending whatever output is ready to `out`
    /// (possibly nothing: the coding may hold input back until it has a
    /// block's worth, or until [`Encoder::flush`]).
    pub(crate) fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.writer().write_all(data)?;
        self.hand_over(out);
        Ok(())
    }

    /// Makes everything pushed so far decodable by the client (a sync
    /// flush, costing a few bytes), for when the replica pauses; appends to
    /// `out`.
    pub(crate) fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.writer().flush()?;
        self.hand_over(out);
        Ok(())
    }

    /// Ends the stream (gzip trailer, zstd frame end, brotli last block),
    /// appending to `out`.
    pub(crate) fn finish(self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut rest = match self.inner {
            Inner::Gzip(e) => e.finish()?,
            Inner::Zstd(e) => e.finish()?,
            // `into_inner` reports no error: writing into a `Vec` has none,
            // and the encoder's own come only from misuse of its state.
            Inner::Br(e) => e.into_inner(),
        };
        out.append(&mut rest);
        Ok(())
    }

    /// The coding's encoder, as a writer.
    fn writer(&mut self) -> &mut dyn Write {
        match &mut self.inner {
            Inner::Gzip(e) => e,
            Inner::Zstd(e) => e,
            Inner::Br(e) => e,
        }
    }

    /// Moves the output staged so far to the end of `out`, without a copy
    /// when `out` is empty (the encoder then keeps `out`'s old buffer).
    fn hand_over(&mut self, out: &mut Vec<u8>) {
        let staged = self.staged();
        if out.is_empty() {
            std::mem::swap(staged, out);
        } else {
            out.append(staged);
        }
    }

    /// The buffer the encoder writes its output into.
    fn staged(&mut self) -> &mut Vec<u8> {
        match &mut self.inner {
            Inner::Gzip(e) => e.get_mut(),
            Inner::Zstd(e) => e.get_mut(),
            Inner::Br(e) => e.get_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use Coding::{Br, Gzip, Zstd};

    const ALL: &[Coding] = &[Zstd, Br, Gzip];

    #[test]
    fn negotiate_follows_q_values_then_route_order() {
        let cases: &[(&[&str], &[Coding], Option<Coding>)] = &[
            (&[], ALL, None),
            (&[""], ALL, None),
            (&["gzip"], ALL, Some(Gzip)),
            (&["gzip, deflate, br"], ALL, Some(Br)),
            (&["gzip, deflate, br, zstd"], ALL, Some(Zstd)),
            (&["gzip, br, zstd"], &[Gzip, Br], Some(Gzip)),
            (&["br;q=0.5, gzip"], ALL, Some(Gzip)),
            (&["gzip;q=1, br;q=1.000"], ALL, Some(Br)),
            (&["gzip;q=0.2", "br;q=0.3"], ALL, Some(Br)),
            (&["GZIP", "  Br ; Q=0.9 "], ALL, Some(Gzip)),
            (&["x-gzip"], ALL, Some(Gzip)),
            (&["*"], ALL, Some(Zstd)),
            (&["*;q=0.5, gzip"], ALL, Some(Gzip)),
            (&["*, zstd;q=0"], ALL, Some(Br)),
            (&["*;q=0"], ALL, None),
            (&["br;q=0, gzip;q=0"], ALL, None),
            (&["gzip, gzip;q=0"], ALL, None),
            (&["identity;q=0"], ALL, None),
            (&["identity"], ALL, None),
            (&["br, zstd"], &[Gzip], None),
            (&["gzip"], &[], None),
            (&["gzip;level=9"], ALL, Some(Gzip)),
            (&["gzip;q=0.001"], ALL, Some(Gzip)),
            (&["gzip;q=2, br;q=1.5, zstd;q=0.0001"], ALL, None),
            (&["gzip;q=abc, br;q=, zstd;q"], ALL, None),
            (&["gzip;q=-1, br;q=1.1, zstd;q=.5"], ALL, None),
            (&[";;, ,,=;q=1", "\u{ff}gzip"], ALL, None),
            (&["gzipp, b r, zst d"], ALL, None),
        ];
        for (fields, allowed, want) in cases {
            let got = negotiate(fields.iter().map(|f| f.as_bytes()), allowed);
            assert_eq!(got, *want, "{fields:?} allowed {allowed:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn negotiate_picks_only_allowed_and_a_refusal_always_wins(
            mut fields in proptest::collection::vec("[ a-zA-Z*;=,.0-9\t-]{0,40}", 0..4),
            gzip_only: bool,
        ) {
            let allowed: &[Coding] = if gzip_only { &[Gzip] } else { ALL };
            let got = negotiate(fields.iter().map(|f| f.as_bytes()), allowed);
            proptest::prop_assert!(got.is_none_or(|c| allowed.contains(&c)));
            fields.push("zstd;q=0, br;q=0, gzip;q=0, *;q=0".into());
            proptest::prop_assert_eq!(negotiate(fields.iter().map(|f| f.as_bytes()), ALL), None);
        }
    }

    #[test]
    fn compressible_skips_each_excluded_response() {
        type Change = fn(&mut ResponseFacts<'static>);
        let cases: [(bool, Change); 17] = [
            (true, |_| {}),
            (true, |f| f.content_length = Some(MIN_LENGTH)),
            (true, |f| f.content_length = None),
            (true, |f| f.status = 201),
            (true, |f| f.status = 404),
            (true, |f| f.status = 503),
            (false, |f| f.content_length = Some(MIN_LENGTH - 1)),
            (false, |f| f.status = 101),
            (false, |f| f.status = 204),
            (false, |f| f.status = 205),
            (false, |f| f.status = 206),
            (false, |f| f.status = 304),
            (false, |f| f.head_request = true),
            (false, |f| f.content_encoding = true),
            (false, |f| f.content_range = true),
            (false, |f| f.cache_control_no_transform = true),
            (false, |f| f.content_type = None),
        ];
        for (want, change) in cases {
            let mut facts = ResponseFacts {
                status: 200,
                content_type: Some(b"text/html; charset=utf-8"),
                content_length: Some(5000),
                ..ResponseFacts::default()
            };
            change(&mut facts);
            assert_eq!(compressible(&facts), want, "{facts:?}");
        }
    }

    #[test]
    fn compressible_types_are_text_like_only() {
        let yes = "text/html|TEXT/CSS|text/event-stream|text/plain;charset=utf-8|\
            application/json; charset=utf-8| Application/JSON |application/vnd.api+json|\
            application/atom+xml|application/xml|application/javascript|image/svg+xml|\
            application/wasm|font/ttf|font/otf|application/x-font-ttf";
        let no = "image/png|image/jpeg|image/gif|image/webp|image/avif|video/mp4|audio/mpeg|\
            application/zip|application/gzip|application/zstd|application/x-brotli|\
            application/octet-stream|application/pdf|font/woff|font/woff2|text/||json|\
            application/jsonx|multipart/form-data";
        for (types, want) in [(yes, true), (no, false)] {
            for ty in types.split('|') {
                assert_eq!(compressible_type(ty.as_bytes()), want, "{ty:?}");
            }
        }
    }

    /// `len` bytes of word soup: compressible, but not trivially.
    fn text(len: usize) -> Vec<u8> {
        let words: Vec<&str> = "berth|edge|replica|<div class=\"row\">|</div>|{\"id\":|42,|the|\
            deploy|\n|route|gzip|zstd|brotli|stream|0x7f3a"
            .split('|')
            .collect();
        let (mut out, mut seed) = (Vec::with_capacity(len + 32), 0x2545_f491_4f6c_dd1d_u64);
        while out.len() < len {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            out.extend_from_slice(words[(seed >> 33) as usize % words.len()].as_bytes());
            out.push(b' ');
        }
        out.truncate(len);
        out
    }

    /// What a client decodes from `wire`, and whether the stream ended
    /// properly (a flushed prefix decodes but does not end).
    fn decode(coding: Coding, wire: &[u8]) -> (Vec<u8>, bool) {
        let mut reader: Box<dyn Read + '_> = match coding {
            Gzip => Box::new(flate2::read::GzDecoder::new(wire)),
            Br => Box::new(brotli::Decompressor::new(wire, 4096)),
            Zstd => Box::new(zstd::stream::read::Decoder::new(wire).unwrap()),
        };
        let mut plain = Vec::new();
        let ended = reader.read_to_end(&mut plain).is_ok();
        (plain, ended)
    }

    #[test]
    fn each_coding_round_trips_uneven_pushes_and_a_flush_makes_a_prefix_decodable() {
        let body = text(64 * 1024);
        for coding in [Gzip, Br, Zstd] {
            let mut encoder = Encoder::new(coding).unwrap();
            let (mut wire, mut at, mut flushed) = (Vec::new(), 0, false);
            for size in [1, 7, 300, 4096, 13, 9000, 2, 1500].iter().cycle() {
                let end = (at + size).min(body.len());
                encoder.push(&body[at..end], &mut wire).unwrap();
                at = end;
                if at >= body.len() / 2 && !flushed {
                    encoder.flush(&mut wire).unwrap();
                    let (prefix, ended) = decode(coding, &wire);
                    assert!(
                        prefix == body[..at] && !ended,
                        "{coding:?}: {}",
                        prefix.len()
                    );
                    flushed = true;
                }
                if at == body.len() {
                    break;
                }
            }
            encoder.finish(&mut wire).unwrap();
            assert!(
                wire.len() < body.len() / 2,
                "{coding:?}: {} bytes",
                wire.len()
            );
            let (plain, ended) = decode(coding, &wire);
            assert!(plain == body && ended, "{coding:?}: {} bytes", plain.len());
        }
    }

    #[test]
    fn encoders_hand_output_over_as_they_go() {
        let body = text(16 * 1024 * 1024);
        for coding in [Gzip, Br, Zstd] {
            let mut encoder = Encoder::new(coding).unwrap();
            let (mut out, mut sent) = (Vec::new(), 0);
            for piece in body.chunks(16 * 1024) {
                encoder.push(piece, &mut out).unwrap();
                assert!(encoder.staged().capacity() <= 1 << 20, "{coding:?}");
                sent += out.len();
                out.clear();
            }
            encoder.finish(&mut out).unwrap();
            assert!(
                out.len() < 1 << 20,
                "{coding:?}: {} bytes held to the end",
                out.len()
            );
            assert!(
                sent > 1 << 20,
                "{coding:?}: only {sent} bytes sent before the end"
            );
        }
    }
}

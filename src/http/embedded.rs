//! Files compiled into the binary gzip-compressed (build.rs): served as they are to clients
//! that accept gzip, inflated once for the others. Keeps the binary under its 15 MB limit.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

/// Embeds `$name.gz` from OUT_DIR (build.rs names each file after its path under `widget/`,
/// with `/` as `-`; the OpenAPI document is `openapi.json`).
macro_rules! gzipped {
    ($name:literal) => {
        $crate::http::embedded::Gzipped::new(include_bytes!(concat!(
            env!("OUT_DIR"),
            "/",
            $name,
            ".gz"
        )))
    };
}
pub(crate) use gzipped;

/// A gzip stream made at build time, and its content inflated on first need.
pub struct Gzipped {
    gz: &'static [u8],
    inflated: OnceLock<Vec<u8>>,
}

impl Gzipped {
    pub const fn new(gz: &'static [u8]) -> Self {
        Self {
            gz,
            inflated: OnceLock::new(),
        }
    }

    /// The compressed bytes, as embedded.
    pub fn gz(&self) -> &'static [u8] {
        self.gz
    }

    /// The content itself.
    pub fn content(&'static self) -> &'static [u8] {
        self.inflated.get_or_init(|| {
            let mut out = Vec::new();
            let read =
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(self.gz), &mut out);
            debug_assert!(read.is_ok(), "build.rs wrote a gzip stream");
            out
        })
    }

    /// The answer's body for a request with these headers: the gzip bytes where gzip is
    /// accepted (with `Content-Encoding`), else the content. Either way it varies by
    /// `Accept-Encoding`.
    pub fn respond(&'static self, request: &HeaderMap, content_type: &'static str) -> Response {
        let gzip = crate::request::accepts(request, "gzip");
        let body = if gzip { self.gz } else { self.content() };
        let mut resp = Response::new(axum::body::Body::from(body));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if gzip {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        resp
    }
}

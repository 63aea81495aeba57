//! Compression of a domain's responses: the codings the edge makes and
//! `compression` as sent (`true`, `false` or a list of codings).

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// A response coding the edge may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Zstandard.
    Zstd,
    /// Brotli.
    Br,
    /// gzip.
    Gzip,
}

/// `compression` as sent: `true` (zstd, br, gzip), `false`, or a list.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum CompressionInput {
    /// On with every coding, or off.
    Toggle(bool),
    /// On with these codings, in order of preference: `zstd`, `br`, `gzip`.
    List(Vec<String>),
}

/// The token of a coding (`zstd`, `br`, `gzip`).
pub fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Zstd => "zstd",
        Encoding::Br => "br",
        Encoding::Gzip => "gzip",
    }
}

pub(super) fn encodings(list: &[String]) -> Result<Vec<Encoding>, FieldError> {
    let mut out: Vec<Encoding> = Vec::new();
    for (i, name) in list.iter().enumerate() {
        let e = match name.trim().to_ascii_lowercase().as_str() {
            "zstd" => Encoding::Zstd,
            "br" => Encoding::Br,
            "gzip" => Encoding::Gzip,
            other => {
                return Err(FieldError::new(
                    format!("compression[{i}]"),
                    format!("{other:?} is not a coding berth makes; use zstd, br or gzip"),
                ))
            }
        };
        if !out.contains(&e) {
            out.push(e);
        }
    }
    if out.is_empty() {
        return Err(FieldError::new(
            "compression",
            "is an empty list; give zstd, br and/or gzip, or false",
        ));
    }
    Ok(out)
}

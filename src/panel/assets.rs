//! The panel's static files, embedded in the binary and served under
//! `/assets/` with a content hash in the name, so they can be cached for
//! a year and still change with a new berth.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// Name before the hash, e.g. `panel` (`panel.<hash>.css`).
    stem: &'static str,
    /// Extension.
    ext: &'static str,
    /// `Content-Type`.
    mime: &'static str,
    /// The bytes.
    body: &'static [u8],
}

/// The stylesheet.
pub const CSS: &Asset = &Asset {
    stem: "panel",
    ext: "css",
    mime: "text/css; charset=utf-8",
    body: include_bytes!("assets/panel.css"),
};
/// The panel's own script.
pub const JS: &Asset = &Asset {
    stem: "panel",
    ext: "js",
    mime: "text/javascript; charset=utf-8",
    body: include_bytes!("assets/panel.js"),
};
const ALL: [&Asset; 2] = [CSS, JS];

/// `/assets/<stem>.<hash>.<ext>` of every asset, in the order of `ALL`.
fn urls() -> &'static [String; 2] {
    static URLS: OnceLock<[String; 2]> = OnceLock::new();
    URLS.get_or_init(|| {
        ALL.map(|a| {
            let hash = hex::encode(&Sha256::digest(a.body)[..6]);
            format!("/assets/{}.{hash}.{}", a.stem, a.ext)
        })
    })
}

/// The URL of `asset`.
pub fn url(asset: &Asset) -> &'static str {
    let i = ALL
        .iter()
        .position(|a| a.stem == asset.stem && a.ext == asset.ext)
        .unwrap_or_default();
    &urls()[i]
}

/// `GET /assets/{file}`: the asset whose hashed name it is.
pub async fn serve(Path(file): Path<String>) -> Response {
    let wanted = format!("/assets/{file}");
    let Some(i) = urls().iter().position(|u| *u == wanted) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let asset = ALL[i];
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.mime)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_its_own_hashed_url() {
        let css = url(CSS);
        let js = url(JS);
        assert!(
            css.starts_with("/assets/panel.") && css.ends_with(".css"),
            "{css}"
        );
        assert!(
            js.starts_with("/assets/panel.") && js.ends_with(".js"),
            "{js}"
        );
        assert_eq!(css.len(), "/assets/panel.".len() + 12 + ".css".len());
    }
}

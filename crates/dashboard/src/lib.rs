//! Postern's web dashboard: a few static files (HTML, CSS and plain JavaScript) embedded in the
//! binary and served by the admin listener at `/`.
//!
//! # Layout
//! - `assets/index.html`: the one page; its views (login, status, queue, message, bindings) are
//!   sections shown one at a time.
//! - `assets/dashboard.css`: the styles.
//! - `assets/api.js`: the token (kept in `sessionStorage`), calls to the admin API with
//!   `Authorization: Bearer`, and the element builder every view uses.
//! - `assets/app.js`: the views and their buttons.
//! - [`asset`]: the table the admin listener looks paths up in.
//!
//! # Design
//! There is no build step: the files are served as written, so what is in `assets/` is what the
//! browser runs. The pages hold no secret and need no token; every piece of data comes from the
//! `/v1/` API, which does. The JavaScript never puts data into the page as markup (no
//! `innerHTML`): text goes through `textContent`, so a sender or a header cannot inject script.
//! There is no inline script or style either, so the page runs under a strict
//! Content-Security-Policy ([`CONTENT_SECURITY_POLICY`]).
//!
//! Lookup is an exact match against a fixed table, never a file system path, so `..` or any
//! other name resolves to nothing.

#![warn(missing_docs)]

/// The Content-Security-Policy the dashboard runs under: everything from the admin listener
/// itself, nothing inline, no frames.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of the dashboard: its name under `/`, its content type and its bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("index.html", HTML, include_bytes!("../assets/index.html")),
    (
        "dashboard.css",
        CSS,
        include_bytes!("../assets/dashboard.css"),
    ),
    ("api.js", JS, include_bytes!("../assets/api.js")),
    ("app.js", JS, include_bytes!("../assets/app.js")),
    ("favicon.svg", SVG, include_bytes!("../assets/favicon.svg")),
];

/// The dashboard file at `path` (relative to `/`, with or without the leading slash): its
/// content type and bytes. `""` and `"index.html"` are the page; any other unknown name is
/// `None`.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let name = path.strip_prefix('/').unwrap_or(path);
    let name = if name.is_empty() { "index.html" } else { name };
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, kind, bytes)| (*kind, *bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_and_index_are_the_page() {
        for path in ["", "/", "index.html", "/index.html"] {
            let (kind, bytes) = asset(path).unwrap();
            assert_eq!(kind, HTML, "{path}");
            assert!(bytes.starts_with(b"<!doctype html>"), "{path}");
        }
    }

    #[test]
    fn scripts_and_styles_have_their_types() {
        assert_eq!(asset("app.js").unwrap().0, JS);
        assert_eq!(asset("/api.js").unwrap().0, JS);
        assert_eq!(asset("dashboard.css").unwrap().0, CSS);
        assert_eq!(asset("favicon.svg").unwrap().0, SVG);
    }

    #[test]
    fn unknown_and_escaping_paths_resolve_to_nothing() {
        for path in [
            "..",
            "../Cargo.toml",
            "/../src/lib.rs",
            "assets/app.js",
            "./app.js",
            "x/../app.js",
            "app.js/",
            "APP.JS",
            "app.js?x=1",
            "%2e%2e/Cargo.toml",
            "v1/status",
            "//",
        ] {
            assert!(asset(path).is_none(), "{path} resolved");
        }
    }

    #[test]
    fn every_file_the_page_loads_is_served() {
        let (_, page) = asset("").unwrap();
        let page = std::str::from_utf8(page).unwrap();
        for (name, _, _) in ASSETS.iter().filter(|(n, _, _)| *n != "index.html") {
            assert!(
                page.contains(&format!("\"{name}\"")),
                "{name} not loaded by the page"
            );
        }
    }

    /// Whether the markup has an `onclick=`-style attribute.
    fn has_event_attribute(page: &str) -> bool {
        page.match_indices(" on").any(|(at, _)| {
            let rest = &page[at + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name > 0 && rest[name..].starts_with('=')
        })
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_no_markup_from_data() {
        let (_, page) = asset("").unwrap();
        let page = std::str::from_utf8(page).unwrap();
        assert!(!page.contains("<script>"), "inline script");
        assert!(!page.contains("<style"), "inline style");
        assert!(!page.contains(" style="), "inline style attribute");
        assert!(!has_event_attribute(page), "inline event handler");
        for script in ["api.js", "app.js"] {
            let text = std::str::from_utf8(asset(script).unwrap().1).unwrap();
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(banned), "{script} uses {banned}");
            }
        }
    }
}

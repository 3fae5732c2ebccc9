//! The dashboard's files, compiled into the binary: no CDN, no external fonts, no inline
//! script (the CSP forbids it).

/// The dashboard page.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");
/// The login page.
pub const LOGIN_HTML: &str = include_str!("../assets/login.html");

/// A served file under `/assets/` and its content type. Only these fixed names exist, so
/// no request path ever reaches the filesystem.
pub fn lookup(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "app.js" => (include_str!("../assets/app.js"), "text/javascript; charset=utf-8"),
        "markdown.js" => (include_str!("../assets/markdown.js"), "text/javascript; charset=utf-8"),
        "login.js" => (include_str!("../assets/login.js"), "text/javascript; charset=utf-8"),
        "app.css" => (include_str!("../assets/app.css"), "text/css; charset=utf-8"),
        "icon.svg" => (include_str!("../assets/icon.svg"), "image/svg+xml"),
        _ => return None,
    })
}

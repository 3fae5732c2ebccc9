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

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPTS: [&str; 3] = ["app.js", "login.js", "markdown.js"];

    #[test]
    fn scripts_never_write_html() {
        // Answers are rendered with DOM APIs only (markdown.js); nothing may parse a string
        // as HTML or code.
        for name in SCRIPTS {
            let (text, _) = lookup(name).expect(name);
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "setAttribute(\"on",
            ] {
                assert!(!text.contains(banned), "{name} uses {banned}");
            }
        }
    }

    #[test]
    fn every_url_is_relative_to_the_page() {
        // A dashboard served under a path prefix must stay under it: no `/`-rooted
        // asset, link, fetch or socket URL.
        for page in [INDEX_HTML, LOGIN_HTML] {
            for rooted in ["href=\"/", "src=\"/", "action=\"/"] {
                assert!(!page.contains(rooted), "a page has {rooted}");
            }
        }
        for name in SCRIPTS {
            let (text, _) = lookup(name).expect(name);
            for rooted in [
                "here(\"/",
                "fetch(\"/",
                "api(\"GET\", \"/",
                "api(\"POST\", \"/",
                "location.replace(\"/",
                "location.host",
            ] {
                assert!(!text.contains(rooted), "{name} has {rooted}");
            }
        }
    }
}

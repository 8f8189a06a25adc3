//! The command centre's files, embedded in the binary at build time: the
//! page at `/` and what it loads from `/console/`. Plain HTML, CSS and
//! JavaScript modules written for the browser as they are, so neither
//! running nor testing the service needs a front-end build step, and
//! nothing is fetched from elsewhere (the page runs on an intranet).

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The name under `/console/` (the page itself is `index.html`).
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $content_type:literal),+ $(,)?) => {
        /// Every file of the page.
        pub static ASSETS: &[Asset] = &[$(Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/", $name)),
        }),+];
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "charts.js" => "text/javascript; charset=utf-8",
    "terms.js" => "text/javascript; charset=utf-8",
}

/// The file named `name`, when the page has one: an exact match against
/// the embedded names, so no path the client sends reaches the disk.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The page at `/`.
pub fn index() -> &'static Asset {
    &ASSETS[0]
}

/// What the page may load and where it may connect: its own origin only,
/// no inline script, no frames around it, and no string ever parsed as
/// HTML or script (Trusted Types: the page builds its DOM node by node).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_found_by_its_exact_name_only() {
        for a in ASSETS {
            assert!(std::ptr::eq(asset(a.name).expect("found"), a));
            assert!(!a.body.is_empty(), "{} is empty", a.name);
        }
        for probe in [
            "../Cargo.toml",
            "app.js/",
            "APP.JS",
            "",
            "%2e%2e",
            "assets/app.js",
        ] {
            assert!(asset(probe).is_none(), "{probe}");
        }
        assert_eq!(index().name, "index.html");
    }

    #[test]
    fn the_page_loads_only_embedded_files_of_its_own() {
        // Every src/href and module import in the page's files names an
        // embedded asset, so a renamed file cannot leave a broken page.
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).expect("UTF-8");
            for marker in ["src=\"", "href=\"", "from \""] {
                for piece in text.split(marker).skip(1) {
                    let target = piece.split('"').next().unwrap_or_default();
                    if target.starts_with('#') || target.starts_with("data:") {
                        continue;
                    }
                    let name = target
                        .strip_prefix("/console/")
                        .or_else(|| target.strip_prefix("./"))
                        .unwrap_or_else(|| {
                            panic!("{}: {target} is not a file of the page", a.name)
                        });
                    assert!(
                        asset(name).is_some(),
                        "{}: {target} is not embedded",
                        a.name
                    );
                }
            }
            // The SVG namespace is a name, not an address the page loads.
            let elsewhere = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !elsewhere.contains("http://") && !elsewhere.contains("https://"),
                "{} refers to another origin",
                a.name
            );
        }
    }
}

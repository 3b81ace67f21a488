//! The look shared by every HTML page the engine writes — the run report (`--html`) and
//! the load plot (`engine load --plot FILE.html`): one stylesheet, one page frame with a
//! header bar, count chips, escaping. Pages are self-contained: system fonts, inline
//! styles and scripts, nothing fetched from anywhere.

use std::fmt::Write as _;

/// The stylesheet every page carries.
pub const STYLE: &str = include_str!("assets/style.css");

/// The colours of [`STYLE`]'s variables, for drawings that cannot use CSS (the load
/// plot's SVG, which is also written alone).
pub mod palette {
    pub const PASS: &str = "#1b9e55";
    pub const FAIL: &str = "#d62c2c";
    pub const SENT: &str = "#2f6fd6";
    pub const RECEIVED: &str = "#6a3d9a";
    pub const MUTED: &str = "#687385";
    pub const LINE: &str = "#dde1e7";
    pub const INK: &str = "#1d2430";
}

/// Text as HTML (element content or a quoted attribute value).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One count in a header: `3 failed`, coloured by its class (`passed`, `failed`,
/// `flaky`, `skipped`, `not_run`, or none), faded when zero.
pub struct Chip<'a> {
    pub class: &'a str,
    pub text: String,
    pub zero: bool,
}

impl<'a> Chip<'a> {
    pub fn count(class: &'a str, count: usize, what: &str) -> Self {
        Self {
            class,
            text: format!("{count} {what}"),
            zero: count == 0,
        }
    }

    pub fn text(text: impl Into<String>) -> Self {
        Self {
            class: "",
            text: text.into(),
            zero: false,
        }
    }
}

/// A page: a header bar (title, a line of context, chips), then `body` (markup), then
/// `script` (inline). `extra_style` is added after the shared stylesheet.
pub struct Page<'a> {
    pub title: &'a str,
    pub meta: &'a str,
    pub chips: Vec<Chip<'a>>,
    pub extra_style: &'a str,
    pub body: &'a str,
    pub script: &'a str,
}

impl Page<'_> {
    pub fn render(&self) -> String {
        let mut html = String::with_capacity(self.body.len() + self.script.len() + 16_384);
        let _ = write!(
            html,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title>\n<style>\n{STYLE}{}</style></head>\n<body>\n\
             <header class=\"bar\"><h1>{}</h1><span class=\"meta\">{}</span><span class=\"chips\">",
            escape(self.title),
            self.extra_style,
            escape(self.title),
            escape(self.meta),
        );
        for chip in &self.chips {
            let _ = write!(
                html,
                "<span class=\"chip {}{}\">{}</span>",
                escape(chip.class),
                if chip.zero { " zero" } else { "" },
                escape(&chip.text)
            );
        }
        html.push_str("</span></header>\n<main>\n");
        html.push_str(self.body);
        html.push_str("</main>\n");
        if !self.script.is_empty() {
            html.push_str("<script>\n");
            html.push_str(self.script);
            html.push_str("</script>\n");
        }
        html.push_str("</body></html>\n");
        html
    }
}

/// JSON for a `<script type="application/json">` element: `<` written as `\u003c`, so
/// no text inside (`</script>`, `<!--`) can end the element early.
pub fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_their_text_and_load_nothing() {
        let page = Page {
            title: "a <b> & \"c\"",
            meta: "m'",
            chips: vec![Chip::count("failed", 0, "failed"), Chip::text("x<y")],
            extra_style: "",
            body: "<p>body</p>",
            script: "",
        }
        .render();
        assert!(page.contains("<title>a &lt;b&gt; &amp; &quot;c&quot;</title>"));
        assert!(page.contains("m&#39;"));
        assert!(page.contains("<span class=\"chip failed zero\">0 failed</span>"));
        assert!(page.contains("x&lt;y"));
        assert!(page.contains("<p>body</p>"));
        for external in ["<link", "src=", "@import", "url(", "http://", "https://"] {
            assert!(!page.contains(external), "{external} in {page}");
        }
    }

    #[test]
    fn the_palette_is_the_stylesheets() {
        for (name, colour) in [
            ("--pass", palette::PASS),
            ("--fail", palette::FAIL),
            ("--sent", palette::SENT),
            ("--received", palette::RECEIVED),
            ("--muted", palette::MUTED),
            ("--line", palette::LINE),
            ("--ink", palette::INK),
        ] {
            assert!(STYLE.contains(&format!("{name}: {colour};")), "{name}");
        }
    }

    #[test]
    fn script_json_cannot_close_its_element() {
        let text = serde_json::json!({ "data": "</script><script>alert(1)</script><!--" });
        let embedded = script_json(&text.to_string());
        assert!(!embedded.contains('<'));
        let back: serde_json::Value = serde_json::from_str(&embedded).unwrap();
        assert_eq!(back, text);
    }
}

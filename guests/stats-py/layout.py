"""The page around every HTML response, as the Rust guests draw it
(guests/html/src/layout.rs), so a page written in Python looks like the rest
of the site; host/tests/it/languages.rs checks that the two agree."""

SITE_NAME = "Academemes"

NAV = [("/", "Home"), ("/memes", "All memes"), ("/random", "Random"), ("/search", "Search"), ("/stats", "Stats"), ("/new", "Submit")]

# A mortarboard, inline so the header needs no extra request.
LOGO = (
    '<svg class="logo" viewBox="0 0 32 32" width="28" height="28" aria-hidden="true" focusable="false">'
    '<path d="M16 5 1 12l15 7 15-7z" fill="currentColor"/>'
    '<path d="M7 15.5v6c0 2.5 4 4.5 9 4.5s9-2 9-4.5v-6l-9 4.2z" fill="currentColor" opacity=".75"/>'
    '<path d="M28 13.5v8" stroke="currentColor" stroke-width="1.6"/>'
    '<circle cx="28" cy="22.5" r="1.6" fill="currentColor"/></svg>'
)

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}


def escape(s: str) -> str:
    """Escapes text for HTML text and quoted attributes; drops the control
    characters XML forbids, as the kit's `escape` does."""
    out = []
    for c in s:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c in "\t\n\r":
            out.append(c)
        elif ord(c) < 0x20 or c in "\ufffe\uffff":
            continue
        else:
            out.append(c)
    return "".join(out)


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def url_encode(s: str) -> str:
    """Percent-encodes everything but RFC 3986's unreserved characters."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in s.encode())


def tag_url(tag: str) -> str:
    return "/memes?tag=" + url_encode(tag)


def page(title: str, current: str, main: str) -> str:
    """A whole HTML document; `title` is plain text, `main` escaped HTML."""
    out = [
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>',
    ]
    if title != SITE_NAME:
        out.append(escape(title) + " — ")
    out.append(SITE_NAME + "</title>\n")
    out.append('<link rel="stylesheet" href="/static/style.css">\n')
    out.append('<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">\n')
    out.append("</head>\n<body>\n")
    out.append('<a class="skip-link" href="#main">Skip to content</a>\n')
    out.append('<header class="site-header">\n<div class="wrap">\n')
    out.append('<a class="brand" href="/">' + LOGO + "<span>Academemes</span></a>\n")
    out.append('<nav aria-label="Main"><ul>')
    for href, label in NAV:
        current_attr = ' aria-current="page"' if href == current else ""
        out.append(f'<li><a href="{href}"{current_attr}>{label}</a></li>')
    out.append("</ul></nav>\n</div>\n</header>\n")
    out.append('<main id="main" class="wrap">\n' + main + "\n</main>\n")
    out.append('<footer class="site-footer">\n<div class="wrap">')
    out.append("<p>Served by Nebula — pure functions</p>")
    out.append("</div>\n</footer>\n</body>\n</html>\n")
    return "".join(out)

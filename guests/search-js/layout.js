// The page around every HTML response, as the Rust guests draw it
// (guests/html/src/layout.rs), and the meme card of guests/html, so pages
// written in JavaScript look like the rest of the site;
// host/tests/it/languages.rs checks that the frames agree.

export const SITE_NAME = "Academemes";

const NAV = [
  ["/", "Home"],
  ["/memes", "All memes"],
  ["/random", "Random"],
  ["/search", "Search"],
  ["/stats", "Stats"],
  ["/new", "Submit"],
];

// A mortarboard, inline so the header needs no extra request.
const LOGO =
  '<svg class="logo" viewBox="0 0 32 32" width="28" height="28" aria-hidden="true" focusable="false">' +
  '<path d="M16 5 1 12l15 7 15-7z" fill="currentColor"/>' +
  '<path d="M7 15.5v6c0 2.5 4 4.5 9 4.5s9-2 9-4.5v-6l-9 4.2z" fill="currentColor" opacity=".75"/>' +
  '<path d="M28 13.5v8" stroke="currentColor" stroke-width="1.6"/>' +
  '<circle cx="28" cy="22.5" r="1.6" fill="currentColor"/></svg>';

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

// Escapes text for HTML text and quoted attributes; drops the control
// characters XML forbids, as the kit's `escape` does.
export function escape(s) {
  let out = "";
  for (const c of String(s)) {
    const code = c.codePointAt(0);
    if (ESCAPES[c]) out += ESCAPES[c];
    else if (c === "\t" || c === "\n" || c === "\r") out += c;
    else if (code < 0x20 || code === 0xfffe || code === 0xffff) continue;
    else out += c;
  }
  return out;
}

// Percent-encodes everything but RFC 3986's unreserved characters.
export function urlEncode(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

export const tagUrl = (tag) => "/memes?tag=" + urlEncode(tag);

// A whole HTML document; `title` is plain text, `main` escaped HTML.
export function page(title, current, main) {
  let out = '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n';
  out += '<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>';
  if (title !== SITE_NAME) out += escape(title) + " — ";
  out += SITE_NAME + "</title>\n";
  out += '<link rel="stylesheet" href="/static/style.css">\n';
  out += '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">\n';
  out += "</head>\n<body>\n";
  out += '<a class="skip-link" href="#main">Skip to content</a>\n';
  out += '<header class="site-header">\n<div class="wrap">\n';
  out += '<a class="brand" href="/">' + LOGO + "<span>Academemes</span></a>\n";
  out += '<nav aria-label="Main"><ul>';
  for (const [href, label] of NAV) {
    const currentAttr = href === current ? ' aria-current="page"' : "";
    out += `<li><a href="${href}"${currentAttr}>${label}</a></li>`;
  }
  out += "</ul></nav>\n</div>\n</header>\n";
  out += '<main id="main" class="wrap">\n' + main + "\n</main>\n";
  out += '<footer class="site-footer">\n<div class="wrap">';
  out += "<p>Served by Nebula — pure functions</p>";
  out += "</div>\n</footer>\n</body>\n</html>\n";
  return out;
}

function votes(n) {
  const noun = n === 1 ? "vote" : "votes";
  return `<span class="votes" title="${n} ${noun}"><span aria-hidden="true">▲</span> ${n}<span class="visually-hidden"> ${noun}</span></span>`;
}

function tagList(tags) {
  if (tags.length === 0) return "";
  let out = '<ul class="tags">';
  for (const tag of tags) {
    out += `<li><a class="tag" href="${escape(tagUrl(tag))}">#${escape(tag)}</a></li>`;
  }
  return out + "</ul>";
}

// One meme as a card: the image linking to its page, votes and tags.
export function card(meme) {
  const caption = escape([meme.top_text, meme.bottom_text].map((s) => s.trim()).filter((s) => s).join(" / "));
  let out = '<article class="card">\n';
  out += `<a class="card-image" href="${meme.url}"><img src="${meme.image}" alt="${caption}" width="600" height="600" loading="lazy"></a>\n`;
  out += '<div class="card-body">\n';
  out += `<a class="card-title" href="${meme.url}">${caption}</a>\n`;
  out += '<div class="card-meta">' + votes(meme.votes) + tagList(meme.tags) + "</div>\n</div>\n</article>\n";
  return out;
}

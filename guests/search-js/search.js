// Search, done by the database (app.toml's reads `search_query`,
// `search_results` and `search_total`, over the FTS5 index of db/schema.sql):
//   GET /api/search?q=&page=  one page of the memes whose top or bottom text,
//                             tags or template contain q (3 characters or
//                             more), ignoring case, most votes first, as JSON
//   GET /search?q=&page=      the same as an HTML page with a search form
// The component only draws what the reads found, so its cost does not grow
// with the number of memes. A pure function: the answer depends on nothing
// but the request and the data.

import { card, escape, page, urlEncode } from "./layout.js";

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

// The shortest query the trigram index can answer.
const MIN_QUERY = 3;

export function handle(req, data) {
  // The query and page as the reads saw them: trimmed, page clamped.
  const query = rows(data, "search_query")[0] ?? {};
  const q = String(query.q ?? "");
  const searchable = Boolean(query.searchable);
  const perPage = Math.max(1, query.per_page ?? 12);
  const pageNo = Math.max(1, query.page ?? 1);
  const totals = rows(data, "search_total")[0] ?? {};
  const found = searchable ? rows(data, "search_results").map(toMeme) : [];
  const total = searchable ? (totals.found ?? 0) : 0;
  const result = { q, total, page: pageNo, per_page: perPage, memes: found };
  switch (req.route) {
    case "/api/search":
      return respond(200, "application/json", json(result));
    case "/search":
      return respond(200, "text/html; charset=utf-8", searchPage(req.path, result, totals.memes ?? 0));
    default:
      return respond(404, "text/plain; charset=utf-8", "There is no such page.\n");
  }
}

// The rows of read `name` as objects (column → value); [] if it is absent.
function rows(data, name) {
  const table = data.find((t) => t.name === name);
  if (!table) return [];
  return table.rows.map((row) => Object.fromEntries(table.columns.map((c, i) => [c, plain(row[i])])));
}

// A SQL value: integers arrive as BigInt, and every count here fits a Number.
function plain(value) {
  switch (value.tag) {
    case "null":
      return null;
    case "integer":
      return Number(value.val);
    case "blob":
      return utf8Decoder.decode(value.val);
    default:
      return value.val;
  }
}

function toMeme(r) {
  return {
    id: r.id,
    template: r.template ?? "",
    template_name: r.template_name ?? r.template ?? "",
    top_text: r.top_text ?? "",
    bottom_text: r.bottom_text ?? "",
    votes: r.votes ?? 0,
    tags: r.tags ? String(r.tags).split(",") : [],
    created_ms: r.created_ms ?? 0,
    url: `/memes/${r.id}`,
    image: `/memes/${r.id}.svg`,
  };
}

// JSON with <, >, & and the JavaScript line separators escaped, so the body
// can never be read as markup, whatever the memes and the query contain.
function json(value) {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

function searchPage(path, { q, total, page: pageNo, per_page: perPage, memes: found }, searched) {
  let main = '<section class="page-head">\n<h1>Search</h1>\n';
  main += '<form class="search-form" method="get" action="/search" role="search">\n';
  main += '<label class="visually-hidden" for="q">Search the memes</label>\n';
  main += `<input id="q" name="q" type="search" value="${escape(q)}" placeholder="reviewer, deadline, p-value…">\n`;
  main += '<button class="button">Search</button>\n</form>\n';
  if (q === "") {
    main += `<p class="count">Search the text, tags and templates of ${searched} memes. Or see the <a href="/stats">statistics</a>.</p>\n</section>\n`;
    return page("Search", path, main);
  }
  if ([...q].length < MIN_QUERY) {
    main += `<p class="count">Type at least ${MIN_QUERY} characters to search.</p>\n</section>\n`;
    return page(`Search: ${q}`, path, main);
  }
  const noun = total === 1 ? "meme" : "memes";
  main += `<p class="count">${total} ${noun} for “${escape(q)}”</p>\n</section>\n`;
  if (found.length === 0 && pageNo === 1) {
    main += '<section class="empty">\n<h2>Nothing found</h2>\n<p>Try another word, or <a href="/new">make this meme yourself</a>.</p>\n</section>\n';
  } else {
    main += '<div class="grid">\n' + found.map(card).join("") + "</div>\n";
    main += pagination(q, pageNo, Math.max(1, Math.ceil(total / perPage)));
  }
  return page(`Search: ${q}`, path, main);
}

// Previous and next links, drawn like the meme list's (guests/meme-list).
function pagination(q, pageNo, last) {
  if (last === 1 && pageNo === 1) return "";
  const url = (n) => escape(`/search?q=${urlEncode(q)}` + (n > 1 ? `&page=${n}` : ""));
  let out = '<nav class="pagination" aria-label="Pages">\n';
  out += pageNo > 1
    ? `<a class="button button-secondary" href="${url(Math.min(pageNo - 1, last))}" rel="prev">← Previous</a>\n`
    : '<span class="button button-secondary" aria-disabled="true">← Previous</span>\n';
  out += `<span class="page-of">Page ${pageNo} of ${last}</span>\n`;
  out += pageNo < last
    ? `<a class="button button-secondary" href="${url(pageNo + 1)}" rel="next">Next →</a>\n`
    : '<span class="button button-secondary" aria-disabled="true">Next →</span>\n';
  return out + "</nav>\n";
}

function respond(status, contentType, body) {
  return {
    status,
    headers: [["content-type", contentType]],
    body: utf8.encode(body),
    effects: [],
  };
}

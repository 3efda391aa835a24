// Search over the memes the host passes in (the read `search_memes`, app.toml):
//   GET /api/search?q=  the memes whose top or bottom text, tags or template
//                       contain q, ignoring case, as JSON
//   GET /search?q=      the same as an HTML page with a search form
// A pure function: the answer depends on nothing but the request and the data.

import { card, escape, page } from "./layout.js";

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function handle(req, data) {
  const q = queryParam(req, "q").trim();
  const memes = rows(data, "search_memes").map(toMeme);
  const found = q === "" ? [] : memes.filter(matches(q));
  switch (req.route) {
    case "/api/search":
      return respond(200, "application/json", json({ q, total: found.length, memes: found }));
    case "/search":
      return respond(200, "text/html; charset=utf-8", searchPage(req.path, q, found, memes.length));
    default:
      return respond(404, "text/plain; charset=utf-8", "There is no such page.\n");
  }
}

function queryParam(req, name) {
  const pair = req.query.find(([k]) => k === name);
  return pair ? pair[1] : "";
}

// The rows of read `name` as objects (column → value); [] if it is absent.
function rows(data, name) {
  const table = data.find((t) => t.name === name);
  if (!table) return [];
  return table.rows.map((row) => Object.fromEntries(table.columns.map((c, i) => [c, plain(row[i])])));
}

// A database value: integers arrive as BigInt, and every count here fits a Number.
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

// Case-insensitive containment over what a person sees of a meme.
// toLowerCase (not toLocaleLowerCase) keeps the answer independent of any locale.
function matches(q) {
  const needle = q.toLowerCase();
  return (m) =>
    [m.top_text, m.bottom_text, m.template, m.template_name, ...m.tags].some((field) =>
      field.toLowerCase().includes(needle),
    );
}

// JSON with <, >, & and the JavaScript line separators escaped, so the body
// can never be read as markup, whatever the memes and the query contain.
function json(value) {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

function searchPage(path, q, found, searched) {
  let main = '<section class="page-head">\n<h1>Search</h1>\n';
  main += '<form class="search-form" method="get" action="/search" role="search">\n';
  main += '<label class="visually-hidden" for="q">Search the memes</label>\n';
  main += `<input id="q" name="q" type="search" value="${escape(q)}" placeholder="reviewer, deadline, p-value…">\n`;
  main += '<button class="button">Search</button>\n</form>\n';
  if (q === "") {
    main += `<p class="count">Search the text, tags and templates of ${searched} memes. Or see the <a href="/stats">statistics</a>.</p>\n</section>\n`;
    return page("Search", path, main);
  }
  const noun = found.length === 1 ? "meme" : "memes";
  main += `<p class="count">${found.length} ${noun} for “${escape(q)}”</p>\n</section>\n`;
  if (found.length === 0) {
    main += '<section class="empty">\n<h2>Nothing found</h2>\n<p>Try another word, or <a href="/new">make this meme yourself</a>.</p>\n</section>\n';
  } else {
    main += '<div class="grid">\n' + found.map(card).join("") + "</div>\n";
  }
  return page(`Search: ${q}`, path, main);
}

function respond(status, contentType, body) {
  return {
    status,
    headers: [["content-type", contentType]],
    body: utf8.encode(body),
    effects: [],
  };
}

"""`GET /stats`: the site in numbers — totals, memes per tag and the templates
with the most votes — drawn from the reads `stats_totals`, `stats_tags` and
`stats_templates` (app.toml). A pure function: the page depends on nothing
but the request and those tables."""

import wit_world
from wit_world.imports.types import Request, Response, Table

from layout import escape, page, tag_url, url_encode
from tables import integer, rows

HTML = "text/html; charset=utf-8"


class WitWorld(wit_world.WitWorld):
    def handle(self, req: Request, data: list[Table]) -> Response:
        if req.route != "/stats":
            return html(404, page("Not found", req.path, not_found()))
        return html(200, page("Statistics", req.path, stats(data)))


def html(status: int, body: str) -> Response:
    return Response(status=status, headers=[("content-type", HTML)], body=body.encode(), effects=[])


def not_found() -> str:
    return (
        '<section class="error-page">\n<p class="error-code">404</p>\n<h1>Not found</h1>\n'
        '<p>There is no such page.</p>\n<p><a class="button" href="/">Back to the front page</a></p>\n</section>'
    )


def number(n: int) -> str:
    return f"{n:,}"


def stats(data: list[Table]) -> str:
    totals = (rows(data, "stats_totals") or [{}])[0]
    memes = integer(totals, "memes")
    out = [
        '<section class="page-head">\n<h1>Statistics</h1>\n',
        '<p class="count">Counted for this request by a pure function written in Python. '
        'Looking for something? <a href="/search">Search the memes</a>.</p>\n</section>\n',
        '<dl class="facts stats-totals">\n',
    ]
    for label, column in [("Memes", "memes"), ("Votes", "votes"), ("Tags", "tags"), ("Templates", "templates")]:
        value = integer(totals, column)
        out.append(f'<div><dt>{label}</dt><dd data-total="{column}">{number(value)}</dd></div>\n')
    out.append("</dl>\n")
    if memes == 0:
        out.append(
            '<section class="empty">\n<h2>No memes yet</h2>\n'
            '<p>Nothing to count. <a href="/new">Be the first to publish</a>.</p>\n</section>\n'
        )
        return "".join(out)
    out.append('<div class="stats">\n')
    out.append(per_tag(rows(data, "stats_tags")))
    out.append(top_templates(rows(data, "stats_templates")))
    out.append("</div>\n")
    return "".join(out)


def bar(value: int, largest: int) -> str:
    """A bar as wide as `value`'s share of the largest value."""
    percent = round(100 * value / largest) if largest > 0 else 0
    return f'<span class="stats-bar" style="width:{percent}%"></span>'


def per_tag(tags: list[dict]) -> str:
    out = [
        '<section aria-labelledby="per-tag">\n',
        '<div class="section-head"><h2 id="per-tag">Memes per tag</h2></div>\n',
    ]
    if not tags:
        out.append('<p class="count">No tags yet.</p>\n</section>\n')
        return "".join(out)
    largest = max(integer(t, "memes") for t in tags)
    out.append(
        '<table class="stats-table">\n<thead><tr><th scope="col">Tag</th>'
        '<th scope="col" class="num">Memes</th>'
        '<th scope="col" class="stats-share"><span class="visually-hidden">Share</span></th></tr></thead>\n<tbody>\n'
    )
    for t in tags:
        tag = str(t.get("tag") or "")
        n = integer(t, "memes")
        out.append(
            f'<tr data-tag="{escape(tag)}"><th scope="row"><a class="tag" href="{escape(tag_url(tag))}">#{escape(tag)}</a></th>'
            f'<td class="num">{number(n)}</td><td class="stats-share">{bar(n, largest)}</td></tr>\n'
        )
    out.append("</tbody>\n</table>\n</section>\n")
    return "".join(out)


def top_templates(templates: list[dict]) -> str:
    out = [
        '<section aria-labelledby="top-templates">\n',
        '<div class="section-head"><h2 id="top-templates">Top templates by votes</h2></div>\n',
    ]
    if not templates:
        out.append('<p class="count">No templates yet.</p>\n</section>\n')
        return "".join(out)
    largest = max(integer(t, "votes") for t in templates)
    out.append(
        '<table class="stats-table">\n<thead><tr><th scope="col">Template</th>'
        '<th scope="col" class="num">Memes</th><th scope="col" class="num">Votes</th>'
        '<th scope="col" class="stats-share"><span class="visually-hidden">Share</span></th></tr></thead>\n<tbody>\n'
    )
    for rank, t in enumerate(templates, start=1):
        ident = str(t.get("id") or "")
        name = str(t.get("name") or ident)
        votes = integer(t, "votes")
        out.append(
            f'<tr data-template="{escape(ident)}"><th scope="row"><span class="stats-rank">{rank}.</span> '
            f'<img class="stats-thumb" src="/static/templates/{escape(url_encode(ident))}.svg" alt="" width="32" height="32" loading="lazy"> '
            f"{escape(name)}</th>"
            f'<td class="num">{number(integer(t, "memes"))}</td><td class="num">{number(votes)}</td>'
            f'<td class="stats-share">{bar(votes, largest)}</td></tr>\n'
        )
    out.append("</tbody>\n</table>\n</section>\n")
    return "".join(out)

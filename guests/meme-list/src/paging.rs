//! Which page of which list: the `paging` and `total` reads.

use kit::data::Data;
use kit::html::url_encode;
use kit::http::query;
use kit::Request;

/// The page asked for. The `paging` read has already clamped the page number
/// and trimmed the tag, so any query string gives a valid page.
pub struct Paging<'a> {
    pub page: i64,
    pub per_page: i64,
    /// The tag the list is filtered by, if any.
    pub tag: Option<&'a str>,
    /// How many memes the whole list has.
    pub total: i64,
}

impl<'a> Paging<'a> {
    pub fn read(req: &'a Request, data: &Data<'a>) -> Self {
        let row = data.first("paging");
        let page = row.and_then(|r| r.int("page")).unwrap_or(1).max(1);
        let per_page = row.and_then(|r| r.int("per_page")).unwrap_or(12).max(1);
        let tag = match row {
            Some(row) => row.text("tag"),
            // Without the read, fall back to the query string as given.
            None => query(req, "tag").map(str::trim).filter(|t| !t.is_empty()),
        };
        let total = data
            .first("total")
            .and_then(|r| r.int("total"))
            .unwrap_or(0)
            .max(0);
        Paging {
            page,
            per_page,
            tag,
            total,
        }
    }

    /// The number of the last page; an empty list has one (empty) page.
    pub fn last_page(&self) -> i64 {
        ((self.total + self.per_page - 1) / self.per_page).max(1)
    }

    /// The URL of page `page` of this list (not yet HTML-escaped).
    pub fn url(&self, page: i64) -> String {
        let mut url = String::from("/memes");
        let mut sep = '?';
        if page > 1 {
            url.push_str(&format!("?page={page}"));
            sep = '&';
        }
        if let Some(tag) = self.tag {
            url.push(sep);
            url.push_str("tag=");
            url.push_str(&url_encode(tag));
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(page: i64, total: i64, tag: Option<&str>) -> Paging<'_> {
        Paging {
            page,
            per_page: 12,
            tag,
            total,
        }
    }

    #[test]
    fn counts_pages() {
        assert_eq!(paging(1, 0, None).last_page(), 1);
        assert_eq!(paging(1, 12, None).last_page(), 1);
        assert_eq!(paging(1, 13, None).last_page(), 2);
    }

    #[test]
    fn page_urls_keep_the_tag() {
        assert_eq!(paging(1, 0, None).url(1), "/memes");
        assert_eq!(paging(1, 0, None).url(2), "/memes?page=2");
        assert_eq!(paging(1, 0, Some("a b&c")).url(1), "/memes?tag=a%20b%26c");
        assert_eq!(paging(1, 0, Some("phd")).url(3), "/memes?page=3&tag=phd");
    }
}

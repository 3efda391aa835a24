//! The request's `Host` header, checked for every request whatever the app:
//! no component sees a request whose authority is missing or ambiguous.

/// What is wrong with a request's `Host` header, if anything (RFC 9112
/// §3.2: an HTTP/1.1 request needs exactly one, and it must be a valid
/// authority; it may be empty). hyper leaves this check to the server.
pub fn host_problem(version: http::Version, headers: &http::HeaderMap) -> Option<&'static str> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == http::Version::HTTP_11 => {
            Some("An HTTP/1.1 request needs a Host header.")
        }
        (None, _) => None,
        (Some(_), Some(_)) => Some("The request has more than one Host header."),
        (Some(h), None) if h.is_empty() => None,
        (Some(h), None) => http::uri::Authority::try_from(h.as_bytes())
            .is_err()
            .then_some("The Host header is not a valid host[:port]."),
    }
}

//! Who may ask the service what: the checks of a request's headers that `http.rs`'s middleware
//! applies, as plain functions (tested without a server). Without a token, only local host
//! names with the listening port are this service (against DNS rebinding); changes must come
//! from the service's own page (`Origin`, `Sec-Fetch-Site`) and carry JSON or nothing (no
//! form posts from other sites); tokens are compared in constant time.

use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap, Uri};

/// `Ok` when the request names this service by a local name (`localhost`, `127.0.0.1`,
/// `[::1]` or the listening address) with the listening port; else why not.
pub(super) fn local_host(headers: &HeaderMap, uri: &Uri, listen: SocketAddr) -> Result<(), String> {
    let host = match headers.get(header::HOST) {
        Some(v) => v.to_str().ok(),
        None => uri.authority().map(|a| a.as_str()),
    };
    let port = listen.port();
    match host {
        Some(h) if names_this(h, listen) => Ok(()),
        _ => Err(format!(
            "refused: the request is addressed to {}, not to this service \
             (localhost:{port}, 127.0.0.1:{port} or [::1]:{port}); without --http-token only \
             local names are answered, so that no web page can reach the service under a name \
             of its own (DNS rebinding). Open http://127.0.0.1:{port}/",
            host.map_or("no host".to_string(), |h| format!("{h:?}"))
        )),
    }
}

/// Whether `host` (a `Host` header: `name[:port]`) is a local name of the service listening on
/// `listen`, with its port (none given means 80).
pub(super) fn names_this(host: &str, listen: SocketAddr) -> bool {
    let host = host.trim().to_ascii_lowercase();
    // The last colon separates the port, unless it is inside an IPv6 literal's brackets.
    let (name, port) = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => (&host[..i], Some(&host[i + 1..])),
        _ => (host.as_str(), None),
    };
    let port_ok = match port {
        Some(p) => p.parse::<u16>().ok() == Some(listen.port()),
        None => listen.port() == 80,
    };
    let own = match listen.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    port_ok && (["localhost", "127.0.0.1", "[::1]"].contains(&name) || name == own)
}

/// `Ok` unless the request says it comes from a page of another site: `Sec-Fetch-Site`
/// (`cross-site`, `same-site`) or an `Origin` that is not this service's own
/// (`http://` or `https://` and the `Host` the request was sent to).
pub(super) fn same_site(headers: &HeaderMap) -> Result<(), String> {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site @ ("cross-site" | "same-site")) = fetch_site {
        return Err(format!(
            "refused: a change requested by a page of another site (Sec-Fetch-Site: {site}); \
             use the page this service serves, or the API from a program"
        ));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let own = !host.is_empty()
        && ["http://", "https://"].iter().any(|scheme| {
            origin
                .strip_prefix(*scheme)
                .is_some_and(|o| o.eq_ignore_ascii_case(host))
        });
    if own {
        return Ok(());
    }
    Err(format!(
        "refused: a change requested by a page of {origin:?}, another site than this service \
         ({host:?}); use the page this service serves, or the API from a program (which sends \
         no Origin)"
    ))
}

/// Without a token, a change must carry JSON or no body at all: a form on any web site can
/// send `application/x-www-form-urlencoded`, `multipart/form-data` or `text/plain` without
/// the browser asking the service first, but not `application/json`.
pub(super) fn json_or_nothing(headers: &HeaderMap) -> Result<(), String> {
    let content_type = headers.get(header::CONTENT_TYPE);
    let body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    let got = match content_type {
        None if !body => return Ok(()),
        None => "a body without a Content-Type".to_string(),
        Some(v) => {
            let text = v.to_str().unwrap_or("");
            let essence = text.split(';').next().unwrap_or("").trim();
            if essence.eq_ignore_ascii_case("application/json") {
                return Ok(());
            }
            format!("Content-Type {text:?}")
        }
    };
    Err(format!(
        "refused: a change takes a JSON body (Content-Type: application/json) or none, not \
         {got}: a form on another web site could send that"
    ))
}

pub(super) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Compares in a time that depends on the lengths only, never on where the first difference
/// is: over the longer length (missing bytes count as 0), folding every difference and the
/// difference of the lengths, so neither a wrong byte nor a wrong length ends it early.
pub(super) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(same("", ""));
        assert!(!same("abc", "abd"));
        assert!(!same("xbc", "abc"));
        // Prefixes either way, and a difference hidden by zero padding.
        assert!(!same("abc", "abcd"));
        assert!(!same("abcd", "abc"));
        assert!(!same("abc", "abc\0"));
        assert!(!same("", "a"));
        assert!(!same("a", ""));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_local_names_with_the_listening_port_are_this_service() {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LocalHost:8080",
            "[::1]:8080",
        ] {
            assert!(names_this(ok, listen), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "localhost.attacker.example:8080",
            "[::1]",
            "",
        ] {
            assert!(!names_this(bad, listen), "{bad}");
        }
        assert!(names_this("localhost", "127.0.0.1:80".parse().unwrap()));
        assert!(names_this("127.0.0.2:9", "127.0.0.2:9".parse().unwrap()));
        let e = local_host(
            &headers(&[("host", "attacker.example")]),
            &Uri::from_static("/snapshot.jpg"),
            listen,
        )
        .unwrap_err();
        assert!(
            e.contains("\"attacker.example\"") && e.contains("DNS rebinding"),
            "{e}"
        );
        assert!(local_host(&HeaderMap::new(), &Uri::from_static("/"), listen).is_err());
    }

    #[test]
    fn changes_from_other_sites_are_refused() {
        let host = ("host", "127.0.0.1:8080");
        assert!(same_site(&headers(&[host])).is_ok());
        assert!(same_site(&headers(&[host, ("origin", "http://127.0.0.1:8080")])).is_ok());
        assert!(same_site(&headers(&[host, ("sec-fetch-site", "same-origin")])).is_ok());
        let e = same_site(&headers(&[host, ("origin", "http://evil.example")])).unwrap_err();
        assert!(e.contains("\"http://evil.example\""), "{e}");
        assert!(same_site(&headers(&[host, ("origin", "null")])).is_err());
        assert!(same_site(&headers(&[host, ("origin", "http://127.0.0.1:9999")])).is_err());
        assert!(same_site(&headers(&[host, ("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_site(&headers(&[host, ("sec-fetch-site", "same-site")])).is_err());
    }

    #[test]
    fn changes_take_json_or_nothing_without_a_token() {
        let json = ("content-type", "application/json; charset=utf-8");
        assert!(json_or_nothing(&headers(&[json, ("content-length", "2")])).is_ok());
        assert!(json_or_nothing(&headers(&[("content-length", "0")])).is_ok());
        assert!(json_or_nothing(&HeaderMap::new()).is_ok());
        let form = ("content-type", "application/x-www-form-urlencoded");
        let e = json_or_nothing(&headers(&[form, ("content-length", "3")])).unwrap_err();
        assert!(e.contains("application/x-www-form-urlencoded"), "{e}");
        assert!(json_or_nothing(&headers(&[("content-type", "text/plain")])).is_err());
        assert!(json_or_nothing(&headers(&[("content-length", "3")])).is_err());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; edge_tl_token=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_value(&h, "edge_tl_token").as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&h, "missing"), None);
    }
}

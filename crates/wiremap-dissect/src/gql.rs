//! GraphQL over HTTP: the operation named by a request's body or `query` parameter.

use crate::redact::percent_decode;

/// GraphQL bodies looked at.
pub(crate) const MAX_GQL_BODY: usize = 16 * 1024;

/// The operation of a GraphQL document: `query GetUser`, `mutation`, `subscription Feed`.
pub fn graphql_operation(doc: &str) -> Option<String> {
    let mut rest = doc.trim_start();
    while let Some(r) = rest.strip_prefix('#') {
        rest = r.split_once('\n').map_or("", |(_, r)| r).trim_start();
    }
    if rest.starts_with('{') {
        return Some("query".into());
    }
    let word_end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let kind = &rest[..word_end];
    if !matches!(kind, "query" | "mutation" | "subscription") {
        return None;
    }
    let after = rest[word_end..].trim_start();
    let name_end = after
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(after.len());
    let name = &after[..name_end];
    Some(if name.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} {name}")
    })
}

/// The string value of `"key"` in a JSON text (first occurrence; escapes decoded).
fn json_string(text: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\"");
    let at = text.find(&pat)? + pat.len();
    let rest = text[at..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'u' => {
                    let h: String = chars.by_ref().take(4).collect();
                    out.push(
                        u32::from_str_radix(&h, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .unwrap_or('?'),
                    );
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// The GraphQL operation of a request, from its JSON or `application/graphql` body or its
/// `query` URL parameter.
pub(crate) fn gql_from(url: &str, body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    if let Some(q) = json_string(&text, "query") {
        let op = graphql_operation(&q)?;
        return Some(match json_string(&text, "operationName") {
            Some(name) if !name.is_empty() && !op.contains(' ') => format!("{op} {name}"),
            _ => op,
        });
    }
    if let Some(op) = graphql_operation(&text) {
        return Some(op);
    }
    let query = url.split_once('?')?.1;
    let q = query.split('&').find_map(|kv| kv.strip_prefix("query="))?;
    graphql_operation(&percent_decode(q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_operations() {
        assert_eq!(
            graphql_operation("query GetUser($id: ID!) { user(id: $id) { name } }").as_deref(),
            Some("query GetUser")
        );
        assert_eq!(
            graphql_operation("  # hi\n mutation { like }").as_deref(),
            Some("mutation")
        );
        assert_eq!(graphql_operation("{ me { id } }").as_deref(), Some("query"));
        assert_eq!(graphql_operation("SELECT 1"), None);
        let body = br#"{"operationName":"Feed","variables":{},"query":"subscription Feed { posts { id } }"}"#;
        assert_eq!(
            gql_from("/graphql", body).as_deref(),
            Some("subscription Feed")
        );
        let body = br#"{"query":"{ me { id } }","operationName":"Me"}"#;
        assert_eq!(gql_from("/graphql", body).as_deref(), Some("query Me"));
        assert_eq!(
            gql_from("/graphql?query=query%20Q1%20%7B%20a%20%7D", b"").as_deref(),
            Some("query Q1")
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}

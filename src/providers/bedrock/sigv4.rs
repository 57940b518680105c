//! AWS Signature Version 4 for header-signed requests (`Authorization: AWS4-HMAC-SHA256 …`),
//! as the AWS general reference describes it and its test suite checks it: a canonical
//! request (method, canonical URI, sorted query, sorted lower-case headers, signed header
//! list, payload SHA-256), a string to sign over its hash and the credential scope, and an
//! HMAC-SHA256 chain from the secret key through date, region, service and `aws4_request`.
//!
//! The canonical URI is the path as sent with each segment URI-encoded once more, as every
//! service but S3 expects: a Bedrock model id's `:` goes out as `%3A` and is signed as `%253A`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::upstream::url_component;

type HmacSha256 = Hmac<Sha256>;

/// Long-term or temporary AWS credentials.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials' token, sent and signed as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ access_key_id: {:?}, .. }}",
            self.access_key_id
        )
    }
}

/// One request to sign. `path` is the path as sent (already percent-encoded), `query` the
/// query string as sent without `?`, `headers` every header to sign (the `host` included).
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The parts of a signature, each exposed so tests can compare them with AWS's published ones.
#[derive(Debug)]
pub struct Signature {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
    /// The whole `Authorization` header value.
    pub authorization: String,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The canonical URI: each segment of the sent path encoded again (`/` kept).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(url_component)
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical query: `name=value` pairs sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs `request` for `region`/`service` at `amz_date` (`YYYYMMDDTHHMMSSZ`).
pub fn sign(
    credentials: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
    request: &Request<'_>,
) -> Signature {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(n, v)| {
            let value = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (n.to_ascii_lowercase(), value)
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        sha256_hex(request.body),
    );
    let date = &amz_date[..8.min(amz_date.len())];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let key = [date, region, service, "aws4_request"].iter().fold(
        format!("AWS4{}", credentials.secret_access_key).into_bytes(),
        |key, part| hmac(&key, part.as_bytes()),
    );
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    );
    Signature {
        canonical_request,
        string_to_sign,
        signature,
        authorization,
    }
}

/// The current time as `x-amz-date` wants it.
pub fn amz_date_now() -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// The headers that sign a POST to `url` with `body`: `x-amz-date`, `x-amz-security-token`
/// (temporary credentials) and `authorization`, over `host` and those two.
pub fn signed_headers(
    credentials: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
    url: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, path_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let mut to_sign = vec![
        ("host".to_string(), host.to_string()),
        ("x-amz-date".to_string(), amz_date.to_string()),
    ];
    let mut out = vec![("x-amz-date", amz_date.to_string())];
    if let Some(token) = &credentials.session_token {
        to_sign.push(("x-amz-security-token".into(), token.clone()));
        out.push(("x-amz-security-token", token.clone()));
    }
    let signature = sign(
        credentials,
        region,
        service,
        amz_date,
        &Request {
            method: "POST",
            path,
            query,
            headers: &to_sign,
            body,
        },
    );
    out.push(("authorization", signature.authorization));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials, region, service and time of AWS's SigV4 test suite
    /// (aws-sig-v4-test-suite, as published in the AWS General Reference).
    fn suite() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }
    const DATE: &str = "20150830T123600Z";

    fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut h = vec![
            ("Host".to_string(), "example.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), DATE.to_string()),
        ];
        h.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        h
    }

    fn suite_sign(
        method: &str,
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Signature {
        sign(
            &suite(),
            "us-east-1",
            "service",
            DATE,
            &Request {
                method,
                path: "/",
                query,
                headers,
                body,
            },
        )
    }

    #[test]
    fn get_vanilla() {
        let s = suite_sign("GET", "", &headers(&[]), b"");
        assert_eq!(
            s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn post_vanilla() {
        let s = suite_sign("POST", "", &headers(&[]), b"");
        assert_eq!(
            s.signature,
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let s = suite_sign("GET", "Param2=value2&Param1=value1", &headers(&[]), b"");
        assert_eq!(
            s.signature,
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let h = headers(&[("Content-Type", "application/x-www-form-urlencoded")]);
        let s = suite_sign("POST", "", &h, b"Param1=value1");
        assert!(s
            .canonical_request
            .ends_with("9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"));
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn a_bedrock_model_id_is_signed_double_encoded() {
        let headers = signed_headers(
            &suite(),
            "us-east-1",
            "bedrock",
            DATE,
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse",
            br#"{"messages":[]}"#,
        );
        assert_eq!(headers[0], ("x-amz-date", DATE.to_string()));
        let auth = &headers[1].1;
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature="), "{auth}");
        let s = sign(
            &suite(),
            "us-east-1",
            "bedrock",
            DATE,
            &Request {
                method: "POST",
                path: "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse",
                query: "",
                headers: &[
                    (
                        "host".into(),
                        "bedrock-runtime.us-east-1.amazonaws.com".into(),
                    ),
                    ("x-amz-date".into(), DATE.into()),
                ],
                body: br#"{"messages":[]}"#,
            },
        );
        assert!(s
            .canonical_request
            .starts_with("POST\n/model/anthropic.claude-3-5-haiku-20241022-v1%253A0/converse\n\n"));
        assert!(auth.ends_with(&s.signature));
        // A fixed Bedrock request at a fixed time always signs the same (regression value).
        assert_eq!(s.signature, FIXED_BEDROCK_SIGNATURE);
    }

    /// botocore 1.44.8 `SigV4Auth(creds, "bedrock", "us-east-1").add_auth` of the same request,
    /// its clock fixed at 2015-08-30T12:36:00Z.
    const FIXED_BEDROCK_SIGNATURE: &str =
        "c84c9106f7e36a20c48b246768132197e989b39d8a4c0d7f33cd4b1e2ffad460";

    #[test]
    fn a_session_token_is_sent_and_signed() {
        let mut creds = suite();
        creds.session_token = Some("token-123".into());
        let headers = signed_headers(
            &creds,
            "eu-west-1",
            "bedrock",
            DATE,
            "http://127.0.0.1:9/x",
            b"",
        );
        assert_eq!(
            headers[1],
            ("x-amz-security-token", "token-123".to_string())
        );
        assert!(headers[2]
            .1
            .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
    }

    #[test]
    fn the_date_has_the_amz_format() {
        let d = amz_date_now();
        assert_eq!(d.len(), 16);
        assert_eq!(&d[8..9], "T");
        assert!(d.ends_with('Z'));
    }
}

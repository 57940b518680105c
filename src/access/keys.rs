//! Gateway keys: what a key is (its SHA-256 hash, never the key itself), how a client presents
//! one (`Authorization: Bearer`, `x-api-key`, `api-key`, or Basic auth's password for a
//! browser), how a new one is made (`sk-gw-` + 256 random bits), and the record kept for each
//! (LiteLLM's field names: `key_alias`, `models`, `max_budget`, `budget_duration`, `rpm_limit`,
//! `tpm_limit`, `team_id`, `user_id`, `expires`, `metadata`, `blocked`). Hashes are compared
//! with `subtle`'s constant-time equality only. Also where the admin key comes from, and the
//! refusal to listen beyond loopback with a provider key and no key at all.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::spend::{Budget, Period};
use crate::config::Config;
use crate::http::Request;
use crate::router::file::Secret;

/// What every generated key starts with.
pub const PREFIX: &str = "sk-gw-";

/// A key's SHA-256: how a key is stored, looked up and compared.
#[derive(Clone, Copy, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn of(secret: &str) -> KeyHash {
        KeyHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// LiteLLM's `token`: the hash as 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for b in self.0 {
            hex.push(DIGITS[usize::from(b >> 4)] as char);
            hex.push(DIGITS[usize::from(b & 15)] as char);
        }
        hex
    }

    pub fn from_hex(hex: &str) -> Option<KeyHash> {
        // Called for every admitted call of a key with limits: a table-free nibble decode,
        // not `from_str_radix` per pair (ten times the instructions).
        fn nibble(b: u8) -> Option<u8> {
            match b {
                b'0'..=b'9' => Some(b - b'0'),
                b'a'..=b'f' => Some(b - b'a' + 10),
                b'A'..=b'F' => Some(b - b'A' + 10),
                _ => None,
            }
        }
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(KeyHash(out))
    }

    /// A key as an admin names it: the key itself, or its hash (`token`) as LiteLLM's
    /// `/key/info` and `/key/list` show it.
    pub fn of_reference(reference: &str) -> KeyHash {
        KeyHash::from_hex(reference).unwrap_or_else(|| KeyHash::of(reference))
    }
}

impl ConstantTimeEq for KeyHash {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

/// Equality is the constant-time one: the time taken does not depend on where two hashes
/// first differ.
impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

/// Hashing for the key maps: the first eight bytes of the SHA-256, uniform already, so the
/// map's hasher runs over one word rather than 32 bytes on every call of a key. Equality
/// still compares all 32.
impl std::hash::Hash for KeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.hex()[..8])
    }
}

/// A new key: `sk-gw-` and 32 random bytes in URL-safe base64 (43 characters).
pub fn generate() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a key: {e}"))?;
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// LiteLLM's `key_name`: the start and the last four characters, which tell keys apart in a
/// list without revealing them.
pub fn display_name(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let head = if secret.starts_with(PREFIX) {
        PREFIX
    } else {
        "sk-"
    };
    format!("{head}...{tail}")
}

/// The key a request presents, from the headers the SDKs use: `Authorization: Bearer` (OpenAI),
/// `x-api-key` (Anthropic), `api-key` (Azure), or the password of `Authorization: Basic` (a
/// browser opening the dashboard).
pub fn presented(req: &Request) -> Option<String> {
    if let Some(auth) = req.header("authorization") {
        let auth = auth.trim();
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.trim().to_string()).filter(|k| !k.is_empty());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let password = text.split_once(':').map_or(text.as_str(), |(_, p)| p);
            return Some(password.to_string()).filter(|k| !k.is_empty());
        }
    }
    ["x-api-key", "api-key"]
        .into_iter()
        .find_map(|h| req.header(h))
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
}

/// Where a key was defined: only keys of the admin API can be changed through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Env,
    ConfigFile,
    Api,
}

/// One gateway key as stored (JSON, under its hash): never the key itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The hash, hex (LiteLLM's `token`).
    pub token: String,
    /// `sk-gw-...abcd`.
    pub key_name: String,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    /// Models and aliases the key may call (globs); empty: every model.
    #[serde(default)]
    pub models: Vec<String>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    /// The budgets: LiteLLM's `max_budget` with its `budget_duration` first, then the
    /// gateway's extra `budgets`.
    #[serde(default)]
    pub budgets: Vec<Budget>,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub blocked: bool,
    /// Refuse models without a known price (their cost cannot be charged to a budget).
    #[serde(default)]
    pub refuse_unpriced: bool,
    #[serde(default)]
    pub metadata: Value,
    pub created_at: i64,
    pub updated_at: i64,
    pub source: Source,
}

impl KeyRecord {
    pub fn new(secret: &str, source: Source, now: i64) -> KeyRecord {
        KeyRecord {
            token: KeyHash::of(secret).hex(),
            key_name: display_name(secret),
            key_alias: None,
            team_id: None,
            user_id: None,
            models: Vec::new(),
            rpm_limit: None,
            tpm_limit: None,
            budgets: Vec::new(),
            expires_at: None,
            blocked: false,
            refuse_unpriced: false,
            metadata: Value::Object(Default::default()),
            created_at: now,
            updated_at: now,
            source,
        }
    }

    pub fn hash(&self) -> Option<KeyHash> {
        KeyHash::from_hex(&self.token)
    }

    /// The name logs, metrics and the dashboard show: the alias, else `sk-gw-...abcd`.
    pub fn name(&self) -> &str {
        self.key_alias.as_deref().unwrap_or(&self.key_name)
    }

    /// Whether the key may call `model` (a glob of its list matches, or it has no list).
    pub fn allows(&self, model: &str) -> bool {
        self.models.is_empty()
            || self.models.iter().any(|pattern| {
                matches!(pattern.as_str(), "*" | "all-proxy-models") || glob(pattern, model)
            })
    }

    /// Whether the key has limits that need the shared store (rpm, tpm or a budget).
    pub fn is_limited(&self) -> bool {
        self.rpm_limit.is_some() || self.tpm_limit.is_some() || !self.budgets.is_empty()
    }
}

/// `*` matches any run of characters (`/` included: `openai/*`), `?` any one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `GATEWAY_API_KEYS`: a comma list of keys, each optionally named (`name=key`).
pub fn parse_env_list(list: &str, now: i64) -> Result<Vec<(String, KeyRecord)>, String> {
    let mut keys = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, secret) = match entry.split_once('=') {
            Some((name, secret)) => (Some(name.trim()), secret.trim()),
            None => (None, entry),
        };
        if secret.len() < 8 {
            return Err(format!(
                "entry {} is shorter than 8 characters; generate keys with 256 random bits",
                keys.len() + 1
            ));
        }
        let mut record = KeyRecord::new(secret, Source::Env, now);
        record.key_alias = name.filter(|n| !n.is_empty()).map(str::to_string);
        keys.push((secret.to_string(), record));
    }
    Ok(keys)
}

/// Listening beyond this machine with a provider's key and no gateway key would let anyone
/// who reaches the port spend the provider credit: refused, unless `ALLOW_UNAUTHENTICATED`.
pub fn refuse_unauthenticated(config: &Config, access: &super::Access) -> Result<(), String> {
    let provider_key = crate::providers::registry::PROVIDERS.iter().any(|p| {
        let settings = config.provider(p.name);
        settings.api_key.is_some()
            || p.extra_vars
                .iter()
                .any(|e| e.secret && settings.extra(e.var).is_some())
    });
    if config.host.is_loopback() || config.allow_unauthenticated || !provider_key {
        return Ok(());
    }
    if access.enabled() {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {} with a provider key and no gateway key: anyone who reaches \
         the port would spend the provider credit. Set GATEWAY_API_KEYS (or ADMIN_API_KEY and \
         make keys with POST /key/generate), or HOST=127.0.0.1, or ALLOW_UNAUTHENTICATED=true \
         if something in front already authenticates.",
        config.host
    ))
}

/// The admin key (`ADMIN_API_KEY`, else a config file's `general_settings.master_key`) and the
/// config file's `gateway_keys`, read once at start.
pub(super) fn from_config(
    config: &Config,
    now: i64,
) -> Result<(Option<String>, Vec<KeyRecord>), String> {
    let Some(path) = &config.config_file else {
        return Ok((config.admin_api_key.clone(), Vec::new()));
    };
    let file = crate::router::file::read(path).map_err(|e| e.to_string())?;
    let admin = match (&config.admin_api_key, file.master_key) {
        (Some(key), _) => Some(key.clone()),
        (None, Some(Secret::Env(name))) => Some(env_secret(&name).ok_or_else(|| {
            format!("general_settings.master_key names os.environ/{name}, which is not set")
        })?),
        (None, Some(Secret::Literal(key))) => Some(key),
        (None, None) => None,
    };
    let mut keys = Vec::new();
    for (line, entry) in &file.gateway_keys {
        let at = format!("{}:{line}: gateway_keys", path.display());
        keys.push(config_key(entry, now).map_err(|e| format!("{at}: {e}"))?);
    }
    Ok((admin, keys))
}

fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// One `gateway_keys` entry: `key_alias`, the key as `key: os.environ/NAME` or its hash as
/// `token` (a key written in the file is refused: secrets never live in a file), and LiteLLM's
/// limits (`models`, `rpm_limit`, `tpm_limit`, `max_budget`, `budget_duration`, `team_id`,
/// `user_id`, `blocked`, `refuse_unpriced_models`).
fn config_key(entry: &serde_json::Map<String, Value>, now: i64) -> Result<KeyRecord, String> {
    let text = |name: &str| -> Result<Option<String>, String> {
        match entry.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(_) => Err(format!("{name} must be a non-empty string")),
        }
    };
    let count = |name: &str| -> Result<Option<u64>, String> {
        match entry.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| format!("{name} must be a positive whole number")),
        }
    };
    let flag = |name: &str| -> Result<bool, String> {
        match entry.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("{name} must be true or false")),
        }
    };
    const FIELDS: &[&str] = &[
        "key_alias",
        "key",
        "token",
        "models",
        "rpm_limit",
        "tpm_limit",
        "max_budget",
        "budget_duration",
        "team_id",
        "user_id",
        "blocked",
        "refuse_unpriced_models",
    ];
    if let Some(unknown) = entry.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("{unknown} is not a key setting"));
    }
    let alias = text("key_alias")?.ok_or("each key needs its key_alias")?;
    let hash = match (text("key")?, text("token")?) {
        (Some(key), None) => match key.strip_prefix("os.environ/") {
            Some(name) => KeyHash::of(
                &env_secret(name)
                    .ok_or_else(|| format!("{alias}: os.environ/{name} is not set"))?,
            ),
            None => {
                return Err(format!(
                    "{alias}: a key written in the file; use key: os.environ/NAME or its token"
                ))
            }
        },
        (None, Some(token)) => KeyHash::from_hex(&token)
            .ok_or_else(|| format!("{alias}: token must be the key's SHA-256 in hex"))?,
        _ => {
            return Err(format!(
                "{alias}: give one of key (os.environ/NAME) or token"
            ))
        }
    };
    let mut record = KeyRecord::new("", Source::ConfigFile, now);
    record.token = hash.hex();
    record.key_name = format!("sk-...{}", &record.token[..4]);
    record.key_alias = Some(alias);
    record.team_id = text("team_id")?;
    record.user_id = text("user_id")?;
    record.rpm_limit = count("rpm_limit")?;
    record.tpm_limit = count("tpm_limit")?;
    record.blocked = flag("blocked")?;
    record.refuse_unpriced = flag("refuse_unpriced_models")?;
    record.models = match entry.get("models") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|m| m.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or("models must be a list of names")?,
        Some(_) => return Err("models must be a list of names".into()),
    };
    if let Some(max) = entry.get("max_budget").filter(|v| !v.is_null()) {
        let max_budget = max
            .as_f64()
            .filter(|m| m.is_finite() && *m >= 0.0)
            .ok_or("max_budget must be a number of USD")?;
        let period = match text("budget_duration")? {
            Some(d) => Period::parse(&d)?,
            None => Period::Total,
        };
        record.budgets.push(Budget { max_budget, period });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hashes_are_compared_with_the_constant_time_equality() {
        // The `PartialEq` the lookup uses is `subtle`'s `ct_eq` (no early exit on the first
        // differing byte), whichever byte differs.
        fn constant_time<T: ConstantTimeEq + PartialEq>(a: &T, b: &T) -> bool {
            let ct: bool = a.ct_eq(b).into();
            assert_eq!(ct, a == b);
            ct
        }
        let a = KeyHash::of("sk-gw-test-fake-one");
        assert!(constant_time(&a, &KeyHash::of("sk-gw-test-fake-one")));
        for i in [0, 15, 31] {
            let mut b = a;
            b.0[i] ^= 1;
            assert!(!constant_time(&a, &b));
        }
    }

    #[test]
    fn generated_keys_carry_256_random_bits_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43, "{a}");
        assert_ne!(a, b);
        assert_eq!(display_name(&a).len(), "sk-gw-...".len() + 4);
        assert!(!display_name(&a).contains(&a[6..20]));
    }

    #[test]
    fn hashes_round_trip_through_hex_and_references_take_either_form() {
        let h = KeyHash::of("sk-gw-test-fake-two");
        assert_eq!(KeyHash::from_hex(&h.hex()), Some(h));
        assert_eq!(KeyHash::of_reference(&h.hex()), h);
        assert_eq!(KeyHash::of_reference("sk-gw-test-fake-two"), h);
        assert_eq!(KeyHash::from_hex("zz"), None);
        assert_eq!(KeyHash::from_hex(&h.hex().to_uppercase()), Some(h));
        let mut not_hex = h.hex();
        not_hex.replace_range(62.., "g0");
        assert_eq!(KeyHash::from_hex(&not_hex), None);
        not_hex.replace_range(62.., "é");
        assert_eq!((not_hex.len(), KeyHash::from_hex(&not_hex)), (64, None));
    }

    #[test]
    fn model_globs_match_aliases_and_provider_prefixes() {
        let mut k = KeyRecord::new("sk-gw-test-fake-three", Source::Api, 0);
        assert!(k.allows("anything"));
        k.models = vec!["mock/*".into(), "gpt-4o?".into(), "chat".into()];
        assert!(k.allows("mock/echo") && k.allows("chat") && k.allows("gpt-4o1"));
        assert!(!k.allows("gpt-4o") && !k.allows("chatty") && !k.allows("openai/gpt-4o"));
        assert!(glob("*a*b", "xxaxxb") && !glob("*a*b", "xxaxxbc"));
    }

    #[test]
    fn the_env_list_takes_plain_and_named_keys() {
        let keys = parse_env_list("sk-gw-test-fake-aaaa, ci=sk-gw-test-fake-bbbb", 0).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].1.name(), "sk-gw-...aaaa");
        assert_eq!(keys[1].1.name(), "ci");
        assert!(parse_env_list("short", 0).is_err());
    }
}

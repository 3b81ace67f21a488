//! Minting JWTs for `authenticate`: claims from the spec over the suite's defaults,
//! `exp`/`iat` from `expires_in` (negative for an already-expired token).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use super::context::{Failure, ScenarioContext};
use crate::diagnostic::FailureKind;
use crate::spec::duration::parse_duration;
use crate::spec::model::{Credentials, JwtSpec};
use crate::template;

pub fn mint(ctx: &mut ScenarioContext, spec: &JwtSpec) -> Result<String, Failure> {
    let config = ctx.config.clone();
    let defaults = config.auth.jwt.as_ref();
    let alg_name = spec
        .alg
        .clone()
        .or_else(|| defaults.map(|d| d.alg.clone()))
        .unwrap_or_else(|| "HS256".into());
    let alg = match alg_name.as_str() {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        other => {
            return Err(Failure::of(
                FailureKind::Spec,
                format!("unsupported JWT algorithm `{other}`"),
            ))
        }
    };
    let key = if alg == Algorithm::RS256 {
        let file = match (
            &spec.private_key_file,
            defaults.and_then(|d| d.private_key_file.as_ref()),
        ) {
            (Some(f), _) => ctx.base_dir().join(f),
            (None, Some(f)) => ctx.config.resolve(f),
            (None, None) => {
                return Err(Failure::of(
                    FailureKind::Spec,
                    "RS256 needs `private_key_file` (in the spec or auth.jwt)",
                ))
            }
        };
        // Read and parsed once per process: connects in load mode sign thousands of
        // tokens with the same key.
        static RSA_KEYS: crate::memo::Memo<EncodingKey> = crate::memo::Memo::new();
        let key = RSA_KEYS.get_or_try_insert(&file.to_string_lossy(), || {
            let pem = std::fs::read(&file).map_err(|e| {
                Failure::of(
                    FailureKind::Spec,
                    format!("cannot read key {}: {e}", file.display()),
                )
            })?;
            EncodingKey::from_rsa_pem(&pem).map_err(|e| {
                Failure::of(
                    FailureKind::Spec,
                    format!("bad RSA key {}: {e}", file.display()),
                )
            })
        })?;
        (*key).clone()
    } else {
        let secret = match (&spec.secret, defaults.and_then(|d| d.secret.as_ref())) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => match ctx
                .run_env
                .render_env_only(s)
                .unwrap_or_else(|| template::render_str(s, &ctx.scope(&[])))
            {
                Ok(Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(e) => {
                    return Err(Failure::of(
                        FailureKind::Spec,
                        format!("cannot resolve auth.jwt.secret: {e}"),
                    ))
                }
            },
            (None, None) => {
                return Err(Failure::of(FailureKind::Spec, "no JWT secret")
                    .hint("set `auth.jwt.secret` in engine.yaml or `secret:` in the step"))
            }
        };
        let key = EncodingKey::from_secret(secret.as_bytes());
        ctx.presented.push(secret);
        key
    };
    let mut claims = defaults.map(|d| d.claims.clone()).unwrap_or_default();
    claims.extend(spec.claims.clone());
    let now = chrono::Utc::now().timestamp();
    let lifetime: i64 = match &spec.expires_in {
        Some(text) => {
            let (negative, body) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text.as_str()),
            };
            let secs = parse_duration(body)?.as_secs() as i64;
            if negative {
                -secs
            } else {
                secs
            }
        }
        None => defaults.map_or(300, |d| d.expires_in.as_secs() as i64),
    };
    claims
        .entry("iat")
        .or_insert(Value::from(now.min(now + lifetime)));
    claims.entry("exp").or_insert(Value::from(now + lifetime));
    jsonwebtoken::encode(&Header::new(alg), &Value::Object(claims), &key)
        .map_err(|e| Failure::of(FailureKind::Spec, format!("cannot sign JWT: {e}")))
}

/// The token to present: minted or given. Either way it is secret from now on.
pub fn token(ctx: &mut ScenarioContext, credentials: &Credentials) -> Result<String, Failure> {
    let token = match (&credentials.jwt, &credentials.token) {
        (Some(spec), _) => mint(ctx, spec)?,
        (None, Some(token)) => token.clone(),
        (None, None) => {
            return Err(Failure::of(
                FailureKind::Spec,
                "credentials need `jwt` or `token`",
            ))
        }
    };
    ctx.presented.push(token.clone());
    Ok(token)
}

//! Typed IDs: every run of a scenario mints fresh values for the IDs it declares, so
//! scenarios, repeats and parallel runs never collide on shared Postgres and Redis.

use std::collections::BTreeMap;

use crate::spec::config::{IdFormat, IdKindSpec};

/// Mint one value of a kind.
pub fn mint(kind: &IdKindSpec) -> String {
    let uuid = uuid::Uuid::new_v4();
    let body = match kind.format {
        IdFormat::Uuid => uuid.to_string(),
        IdFormat::Hex => uuid.simple().to_string(),
        IdFormat::Ulid => ulid(uuid.as_bytes()),
        IdFormat::Int => {
            let bytes = uuid.as_bytes();
            let mut n = 0u64;
            for b in &bytes[..8] {
                n = (n << 8) | u64::from(*b);
            }
            // 53 bits: exact in every JSON number implementation.
            ((n >> 11) | 1).to_string()
        }
    };
    format!("{}{}", kind.prefix, body)
}

/// Mint every declared ID of a scenario: name → value.
pub fn mint_all(
    declared: &[(String, String)],
    kinds: &BTreeMap<String, IdKindSpec>,
) -> serde_json::Map<String, serde_json::Value> {
    let plain = IdKindSpec {
        prefix: String::new(),
        format: IdFormat::Uuid,
    };
    declared
        .iter()
        .map(|(name, kind)| {
            let spec = kinds.get(kind).unwrap_or(&plain);
            (name.clone(), serde_json::Value::String(mint(spec)))
        })
        .collect()
}

/// A ULID: 48-bit millisecond time, then 80 random bits, Crockford base32.
fn ulid(random: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = chrono::Utc::now().timestamp_millis().max(0) as u128 & ((1 << 48) - 1);
    let mut rand = 0u128;
    for b in &random[..10] {
        rand = (rand << 8) | u128::from(*b);
    }
    let mut value = (millis << 80) | rand;
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_has_its_shape_and_values_are_fresh() {
        let kind = |format| IdKindSpec {
            prefix: "k_".into(),
            format,
        };
        let a = mint(&kind(IdFormat::Uuid));
        assert!(a.starts_with("k_") && uuid::Uuid::parse_str(&a[2..]).is_ok());
        assert_ne!(a, mint(&kind(IdFormat::Uuid)));
        assert_eq!(mint(&kind(IdFormat::Hex)).len(), 2 + 32);
        let u = mint(&kind(IdFormat::Ulid));
        assert_eq!(u.len(), 2 + 26);
        assert!(mint(&kind(IdFormat::Int))[2..].parse::<u64>().unwrap() < (1 << 53));
    }
}

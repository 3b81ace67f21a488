//! Reading one string out of a JSON document without building the document: raw frames
//! are skimmed for their event type on arrival, and parsed in full only when a step
//! looks further (most steps of a busy connection look at the type alone, and a parsed
//! object is several allocations).

use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The string at `path` (object keys, outermost first) in the JSON document `text`:
/// `Ok(None)` when there is none there (or something else than a string), `Err` when
/// the text is not JSON. Reads as `serde_json::from_str::<Value>` would: a key given
/// twice counts with its last value.
pub fn string_at<K: AsRef<str>>(
    text: &str,
    path: &[K],
) -> Result<Option<String>, serde_json::Error> {
    let mut document = serde_json::Deserializer::from_str(text);
    let found = At(path).deserialize(&mut document)?;
    document.end()?;
    Ok(found)
}

/// The rest of the path to follow from the value being read.
struct At<'p, K>(&'p [K]);

impl<'de, K: AsRef<str>> DeserializeSeed<'de> for At<'_, K> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, value: D) -> Result<Self::Value, D::Error> {
        value.deserialize_any(self)
    }
}

impl<'de, K: AsRef<str>> Visitor<'de> for At<'_, K> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| value.to_string()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        while items.next_element::<Skip>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let Some((first, rest)) = self.0.split_first() else {
            while entries.next_entry::<Skip, Skip>()?.is_some() {}
            return Ok(None);
        };
        while let Some(on_path) = entries.next_key_seed(KeyIs(first.as_ref()))? {
            if on_path {
                found = entries.next_value_seed(At(rest))?;
            } else {
                entries.next_value::<Skip>()?;
            }
        }
        Ok(found)
    }
}

/// A value read and dropped. Not serde's `IgnoredAny`: serde_json skips those without
/// its nesting limit, and a document too deep for the parser is not JSON here either.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(value: D) -> Result<Skip, D::Error> {
        value.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Skip, A::Error> {
        while items.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Skip, A::Error> {
        while entries.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// Whether an object key is the one wanted, compared without copying it.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, key: D) -> Result<bool, D::Error> {
        key.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// JSON documents for property tests: objects keyed from `keys` (a regex, such as
/// `"a|b|c"`, so that paths are found, missing or repeated), strings from `text`.
#[cfg(test)]
pub(crate) fn documents(
    keys: &'static str,
    text: &'static str,
) -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text.prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(keys, inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What the full parse gives: the reference the skim must agree with.
    fn parsed(text: &str, path: &[&str]) -> Option<Option<String>> {
        let value: Value = serde_json::from_str(text).ok()?;
        let found = path.iter().try_fold(&value, |v, key| v.get(key));
        Some(found.and_then(Value::as_str).map(str::to_string))
    }

    #[test]
    fn the_skim_reads_what_the_full_parse_reads() {
        let cases: &[(&str, &[&str])] = &[
            (r#"{"type":"ping"}"#, &["type"]),
            (
                r#"{"id":1,"type":"pong","data":{"x":[1,2,{"type":"inner"}]}}"#,
                &["type"],
            ),
            (
                r#"{"data":{"type":"nested"},"type":"outer"}"#,
                &["data", "type"],
            ),
            (r#"{"type":"first","type":"last"}"#, &["type"]),
            (r#"{"type":"first","type":7}"#, &["type"]),
            (r#"{"type":7}"#, &["type"]),
            (r#"{"type":{"a":1}}"#, &["type"]),
            (
                r#"{"typ\u0065":"escaped key","t":"\"quoted\" \u00e9"}"#,
                &["type"],
            ),
            (r#"{"t":"\"quoted\" \u00e9"}"#, &["t"]),
            (r#"{"other":"x"}"#, &["type"]),
            (r#"["type","ping"]"#, &["type"]),
            (r#""type""#, &["type"]),
            (r#"null"#, &["type"]),
            (r#"  {"type" : "spaced"}  "#, &["type"]),
            (r#"{"":"empty key"}"#, &[""]),
            (r#"{"type":"ping"} trailing"#, &["type"]),
            (r#"{"type":"ping""#, &["type"]),
            (r#"{"type":"ping",}"#, &["type"]),
            ("not json", &["type"]),
            ("", &["type"]),
        ];
        for (text, path) in cases {
            assert_eq!(
                string_at(text, path).ok(),
                parsed(text, path),
                "{text} at {path:?}"
            );
        }
    }

    /// JSON documents whose objects use a few keys often, so that the type path is
    /// found, missing, nested or of another type.
    fn document() -> impl proptest::strategy::Strategy<Value = Value> {
        documents("type|data|t|x|", "[a-z\"\\\\é ]{0,6}")
    }

    proptest::proptest! {
        #[test]
        fn the_skim_agrees_with_the_full_parse_on_any_document_and_any_cut(
            value in document(),
            pretty in proptest::bool::ANY,
            cut in 0usize..64,
        ) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                value.to_string()
            };
            for path in [&["type"][..], &["data", "type"][..], &[""][..]] {
                proptest::prop_assert_eq!(string_at(&text, path).ok(), parsed(&text, path));
                // A document cut short is not JSON, whatever the path.
                let end = text.len().saturating_sub(cut);
                if let Some(cut_text) = text.get(..end) {
                    proptest::prop_assert_eq!(string_at(cut_text, path).ok(), parsed(cut_text, path));
                }
            }
        }
    }

    #[test]
    fn nesting_beyond_the_parsers_limit_is_not_json_either_way() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let typed_deep = format!(r#"{{"type":"x","deep":{deep}}}"#);
        for text in [&deep, &typed_deep] {
            assert!(string_at(text, &["type"]).is_err());
            assert_eq!(parsed(text, &["type"]), None);
        }
    }
}

//! Lenient field readers for provider events: a field of an unexpected JSON type reads as absent
//! instead of failing the whole event, so that validation can name the field that is missing.
//!
//! Each is a visitor on the value as it streams by: nothing is buffered (serde's
//! `#[serde(untagged)]` would copy every nested object, a Linxo resource with a hundred accounts
//! included, into an intermediate tree before trying it), and a value of the wrong type is
//! skipped in place.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Implements the visitor methods for every JSON type a reader does not want: the value is
/// consumed and read as absent.
macro_rules! absent_otherwise {
    ($($method:ident($type:ty)),* $(,)?) => {
        $(fn $method<E: serde::de::Error>(self, _: $type) -> Result<Self::Value, E> {
            Ok(None)
        })*
    };
}

macro_rules! skip_containers {
    () => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (maps) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Skip.visit_map(map)?;
            Ok(None)
        }
    };
    (seqs) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Skip.visit_seq(seq)?;
            Ok(None)
        }
    };
}

/// Skips a value of the wrong type. Unlike `IgnoredAny` (which serde_json skips without any
/// depth limit), every nested array or object goes through `deserialize_any`, so serde_json's
/// recursion limit (128) still refuses absurdly deep input in a field finhook reads.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Skip)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Skip)
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Skip)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Skip)
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Skip)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Skip)
    }
}

/// A non-empty string, as a `String` or as a `Cow<'de, str>` (for fields only looked at, never
/// kept). The `Cow` borrows from the input when the deserializer lends it (serde_json reading a
/// slice, for a string without escapes) and owns a copy otherwise.
pub(crate) fn text<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<&'de str> + From<String>,
{
    deserializer.deserialize_any(NonEmptyText {
        integers: false,
        read: PhantomData,
    })
}

/// An id written as a non-empty string or an integer; the envelope always carries strings.
/// Like [`text`], a `String` or a borrowed `Cow<'de, str>`.
pub(crate) fn id_string<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<&'de str> + From<String>,
{
    deserializer.deserialize_any(NonEmptyText {
        integers: true,
        read: PhantomData,
    })
}

/// The visitor of [`text`] and [`id_string`]: a non-empty string read as `T` (borrowed when the
/// deserializer lends it), an integer as its decimal text when `integers`, anything else as
/// absent.
struct NonEmptyText<T> {
    integers: bool,
    read: PhantomData<T>,
}

impl<'de, T: From<&'de str> + From<String>> Visitor<'de> for NonEmptyText<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.integers {
            "a string or an integer"
        } else {
            "a string"
        })
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok((!value.is_empty()).then(|| T::from(value)))
    }
    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok((!value.is_empty()).then(|| T::from(value.to_owned())))
    }
    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok((!value.is_empty()).then(|| T::from(value)))
    }
    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(self.integers.then(|| T::from(value.to_string())))
    }
    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(self.integers.then(|| T::from(value.to_string())))
    }
    absent_otherwise!(visit_bool(bool), visit_f64(f64));
    skip_containers!();
    skip_containers!(maps);
    skip_containers!(seqs);
}

/// A number.
pub(crate) fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    struct Number;
    impl<'de> Visitor<'de> for Number {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(Some(value as f64))
        }
        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(value as f64))
        }
        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }
        absent_otherwise!(visit_bool(bool), visit_str(&str));
        skip_containers!();
        skip_containers!(maps);
        skip_containers!(seqs);
    }
    deserializer.deserialize_any(Number)
}

/// A boolean.
pub(crate) fn boolean<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    struct Boolean;
    impl<'de> Visitor<'de> for Boolean {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Self::Value, E> {
            Ok(Some(value))
        }
        absent_otherwise!(
            visit_i64(i64),
            visit_u64(u64),
            visit_f64(f64),
            visit_str(&str)
        );
        skip_containers!();
        skip_containers!(maps);
        skip_containers!(seqs);
    }
    deserializer.deserialize_any(Boolean)
}

/// A nested object read into `T` as it streams by (every field of `T` lenient too).
pub(crate) fn object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_any(ObjectVisitor(PhantomData))
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
    }
    absent_otherwise!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str)
    );
    skip_containers!();
    skip_containers!(seqs);
}

/// An array of objects, each read into `T`; elements of another type are skipped.
pub(crate) fn list<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct List<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for List<T> {
        type Value = Option<Vec<T>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<Lenient<T>>()? {
                items.extend(item.0);
            }
            Ok(Some(items))
        }
        absent_otherwise!(
            visit_bool(bool),
            visit_i64(i64),
            visit_u64(u64),
            visit_f64(f64),
            visit_str(&str)
        );
        skip_containers!();
        skip_containers!(maps);
    }
    deserializer.deserialize_any(List(PhantomData))
}

/// One array element read as an object, or skipped.
struct Lenient<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object(deserializer).map(Lenient)
    }
}

/// The length of an array, its elements skipped unread.
pub(crate) fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut length = 0u64;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                length += 1;
            }
            Ok(Some(length))
        }
        absent_otherwise!(
            visit_bool(bool),
            visit_i64(i64),
            visit_u64(u64),
            visit_f64(f64),
            visit_str(&str)
        );
        skip_containers!();
        skip_containers!(maps);
    }
    deserializer.deserialize_any(Count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner {
        #[serde(default, deserialize_with = "text")]
        name: Option<String>,
        #[serde(default, deserialize_with = "count")]
        items: Option<u64>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Outer {
        #[serde(default, deserialize_with = "id_string")]
        id: Option<String>,
        #[serde(default, deserialize_with = "object")]
        inner: Option<Inner>,
        #[serde(default, deserialize_with = "list")]
        all: Option<Vec<Inner>>,
        #[serde(default, deserialize_with = "number")]
        n: Option<f64>,
        #[serde(default, deserialize_with = "boolean")]
        b: Option<bool>,
    }

    #[derive(Deserialize)]
    struct Looked<'a> {
        #[serde(default, borrow, deserialize_with = "text")]
        name: Option<std::borrow::Cow<'a, str>>,
        #[serde(default, borrow, deserialize_with = "id_string")]
        id: Option<std::borrow::Cow<'a, str>>,
    }

    #[test]
    fn looked_at_strings_borrow_unless_escaped_or_numbers() {
        use std::borrow::Cow;
        let plain: Looked = serde_json::from_str(r#"{"name":"abc","id":"7"}"#).unwrap();
        assert!(matches!(plain.name, Some(Cow::Borrowed("abc"))));
        assert!(matches!(plain.id, Some(Cow::Borrowed("7"))));
        let escaped: Looked = serde_json::from_str(r#"{"name":"a\u0062c","id":42}"#).unwrap();
        assert!(matches!(&escaped.name, Some(Cow::Owned(name)) if name == "abc"));
        assert!(matches!(&escaped.id, Some(Cow::Owned(id)) if id == "42"));
        let empty: Looked = serde_json::from_str(r#"{"name":"","id":""}"#).unwrap();
        assert!(empty.name.is_none() && empty.id.is_none());
    }

    #[test]
    fn wrong_types_read_as_absent_and_right_ones_are_read() {
        let read: Outer = serde_json::from_str(
            r#"{"id":7,"inner":{"name":"x","items":[1,{"a":[2]},3]},"all":[{"name":""},4,{"name":"y"}],"n":1.5,"b":true}"#,
        )
        .unwrap();
        assert_eq!(read.id.as_deref(), Some("7"));
        assert_eq!(
            read.inner,
            Some(Inner {
                name: Some("x".into()),
                items: Some(3)
            })
        );
        assert_eq!(
            read.all,
            Some(vec![
                Inner {
                    name: None,
                    items: None
                },
                Inner {
                    name: Some("y".into()),
                    items: None
                }
            ])
        );
        assert_eq!((read.n, read.b), (Some(1.5), Some(true)));
        let wrong: Outer = serde_json::from_str(
            r#"{"id":{"x":[1]},"inner":[{"name":"x"}],"all":"no","n":"1","b":null}"#,
        )
        .unwrap();
        assert_eq!(
            wrong,
            Outer {
                id: None,
                inner: None,
                all: None,
                n: None,
                b: None
            }
        );
        let nested_wrong: Outer =
            serde_json::from_str(r#"{"inner":{"name":["a"],"items":{"k":1}}}"#).unwrap();
        assert_eq!(
            nested_wrong.inner,
            Some(Inner {
                name: None,
                items: None
            })
        );
    }
}

//! Layering option structs (a scenario file under the command line) through their serde
//! form, so no struct needs a hand-written merge that must learn every new field.
//!
//! A field that is unset serializes to nothing (`None`, `false` and empty lists are skipped by
//! the structs' serde attributes), so laying `over`'s fields onto `base`'s replaces exactly
//! the ones the user set.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// `base` with every field `over` sets replaced by `over`'s value (nested tables merge key
/// by key, lists replace).
pub fn overlay<T: Serialize + DeserializeOwned>(base: &T, over: &T) -> T {
    let mut merged = table(base);
    lay(&mut merged, table(over));
    toml::Value::Table(merged)
        .try_into()
        .expect("a merge of two valid option sets is valid")
}

fn table<T: Serialize>(value: &T) -> toml::Table {
    toml::Table::try_from(value).expect("option structs serialize to a TOML table")
}

fn lay(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => lay(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, serde::Deserialize)]
    struct Opts {
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        list: Vec<u32>,
    }

    #[test]
    fn set_fields_win_and_unset_ones_keep_the_base() {
        let base = Opts {
            a: Some(1),
            b: Some("file".into()),
            list: vec![1, 2],
        };
        let over = Opts {
            b: Some("flag".into()),
            ..Default::default()
        };
        let m = overlay(&base, &over);
        assert_eq!(
            m,
            Opts {
                a: Some(1),
                b: Some("flag".into()),
                list: vec![1, 2]
            }
        );
        let m = overlay(
            &base,
            &Opts {
                list: vec![9],
                ..Default::default()
            },
        );
        assert_eq!(m.list, [9]);
    }
}

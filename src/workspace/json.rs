//! Reading JSON input strictly: bounded size, no devices, duplicate object
//! keys refused with their JSON pointer and line, invalid UTF-8 with its
//! line and column.

use crate::error::{Error, Result};
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::io::Read;
use std::path::Path;

/// Largest input file read, in bytes (`GRADFIT_MAX_INPUT_MB` overrides; the
/// default, 2 GiB, is far above any published likelihood).
pub fn max_input_bytes() -> u64 {
    std::env::var("GRADFIT_MAX_INPUT_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|mb| mb.saturating_mul(1 << 20))
        .unwrap_or(2 << 30)
}

/// Read a file (or standard input for `-`) into memory, refusing devices and
/// inputs above [`max_input_bytes`].
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let limit = max_input_bytes();
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        // read once per process: a second read (inspect's measurement list,
        // `combine - -`) gets the same bytes, not an exhausted stream
        static STDIN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        if let Some(b) = STDIN.get() {
            return Ok(b.clone());
        }
        std::io::stdin()
            .lock()
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(io)?;
        if buf.len() as u64 <= limit {
            let _ = STDIN.set(buf.clone());
        }
    } else {
        let f = std::fs::File::open(path).map_err(io)?;
        let meta = f.metadata().map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            if t.is_char_device() || t.is_block_device() || t.is_socket() {
                return Err(Error::input(format!(
                    "{}: is a device, not a file",
                    path.display()
                )));
            }
        }
        if meta.is_dir() {
            return Err(Error::input(format!(
                "{}: is a folder, not a file",
                path.display()
            )));
        }
        f.take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    }
    if buf.len() as u64 > limit {
        return Err(Error::input(format!(
            "{}: larger than {} MiB; refusing to read it (set GRADFIT_MAX_INPUT_MB to raise the limit)",
            path.display(),
            limit >> 20
        )));
    }
    Ok(buf)
}

/// Whether the JSON text holds a negative zero (`-0`, `-0.000`, `-0e5`):
/// the fast parser reads those as +0, so such a document takes serde_json's
/// path. A match inside a string only costs the slower path.
pub fn has_negative_zero(bytes: &[u8]) -> bool {
    memchr::memmem::find_iter(bytes, b"-0").any(|p| {
        let mut rest = bytes[p + 2..].iter().copied();
        let mut next = rest.next();
        if next == Some(b'.') {
            next = rest.find(|&c| c != b'0');
        }
        !matches!(next, Some(b'1'..=b'9'))
    })
}

/// Parse JSON bytes strictly; `name` labels errors. Duplicate keys in an
/// object are an error naming their JSON pointer.
pub fn parse_strict(bytes: &[u8], name: &str) -> Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict { at: &Seg::Root }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| Error::Json {
            path: name.to_string(),
            message: e.to_string(),
        })?;
    Ok(v)
}

/// Where a value is: built into a JSON pointer only when an error needs it.
enum Seg<'p> {
    Root,
    Index(&'p Seg<'p>, usize),
    Key(&'p Seg<'p>, &'p str),
}

impl Seg<'_> {
    fn pointer(&self) -> String {
        match self {
            Seg::Root => String::new(),
            Seg::Index(up, i) => format!("{}/{i}", up.pointer()),
            Seg::Key(up, k) => format!("{}/{}", up.pointer(), super::pointer_token(k)),
        }
    }
}

/// Deserialize a [`Value`] refusing duplicate keys (for `Value` fields of
/// typed structures: `#[serde(deserialize_with = "strict_value")]`).
pub fn strict_value<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Value, D::Error> {
    Strict { at: &Seg::Root }.deserialize(d)
}

/// A [`Value`] builder that knows where it is and refuses duplicate keys.
struct Strict<'p> {
    at: &'p Seg<'p>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{}: number {v} is not finite", self.where_())))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let at = Seg::Index(self.at, out.len());
            match seq.next_element_seed(Strict { at: &at })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format!(
                    "duplicate key '{key}'{} (a later value would silently replace the first)",
                    match self.at {
                        Seg::Root => String::new(),
                        s => format!(" in the object at {}", s.pointer()),
                    }
                )));
            }
            let v = {
                let at = Seg::Key(self.at, &key);
                map.next_value_seed(Strict { at: &at })?
            };
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

impl Strict<'_> {
    fn where_(&self) -> String {
        match self.at {
            Seg::Root => "the top level".to_string(),
            s => s.pointer(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_with_their_place() {
        let e = parse_strict(br#"{"a": {"b": 1, "c": [{"x": 1, "x": 2}]}}"#, "f.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f.json") && e.contains("duplicate key 'x'"),
            "{e}"
        );
        assert!(e.contains("/a/c/0") && e.contains("line 1"), "{e}");
        let v = parse_strict(br#"{"a": [1, 2.5, "s", null, true], "b": {}}"#, "f").unwrap();
        let w: Value =
            serde_json::from_str(r#"{"a": [1, 2.5, "s", null, true], "b": {}}"#).unwrap();
        assert_eq!(v, w);
    }

    #[test]
    fn invalid_utf8_and_trailing_text_name_the_position() {
        let e = parse_strict(b"{\"a\": \"\xff\"}", "u.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("u.json") && e.contains("line 1 column"), "{e}");
        let e = parse_strict(b"{} x", "t.json").unwrap_err().to_string();
        assert!(e.contains("trailing"), "{e}");
    }

    #[test]
    fn devices_and_folders_are_not_read() {
        #[cfg(unix)]
        {
            let e = read_bytes(Path::new("/dev/zero")).unwrap_err().to_string();
            assert!(e.contains("is a device"), "{e}");
        }
        let e = read_bytes(Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("folder"), "{e}");
    }
}

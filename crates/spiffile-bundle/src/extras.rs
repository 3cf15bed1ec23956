//! Members the profile does not define (at the top level, or in a JWK),
//! kept as JSON text in one buffer rather than as a tree of values.
//!
//! A `serde_json::Value` costs 32 bytes or more per element: an unknown
//! member holding `[0,0,0,…]` grew 16 times its size in memory (822 MB for a
//! bundle under the 48 MiB cap). Here the members are appended, compacted,
//! to one string as they are read (`"name":value,"name":value`), so they
//! take at most their size in the document; they are written back
//! re-indented straight from that text, and turned into values only when
//! asked for ([`Extras::to_map`]).

use std::fmt::{self, Write as _};

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Unknown members, in document order, as compact JSON text.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Extras {
    /// `"name":value` pairs joined by `,` (no surrounding braces).
    text: String,
}

impl fmt::Debug for Extras {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.pairs()).finish()
    }
}

impl Extras {
    /// Appends one member (its value as the parser read it).
    pub(crate) fn push(&mut self, name: &str, value: &RawValue) {
        if !self.text.is_empty() {
            self.text.push(',');
        }
        // A JSON string never fails to serialize.
        let _ = write!(self.text, "{}", Value::from(name));
        self.text.push(':');
        compact_into(&mut self.text, value.get());
    }

    /// Gives back the spare capacity of the buffer (a key keeps its
    /// extras for as long as the bundle lives).
    pub(crate) fn shrunk(mut self) -> Self {
        self.text.shrink_to_fit();
        self
    }

    /// The members as values (a name repeated in the document keeps its
    /// last value).
    pub(crate) fn to_map(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, value) in self.pairs() {
            if let (Ok(name), Ok(value)) = (
                serde_json::from_str::<String>(name),
                serde_json::from_str::<Value>(value),
            ) {
                out.insert(name, value);
            }
        }
        out
    }

    /// Each member as `(name as a JSON string, value as compact JSON)`.
    pub(crate) fn pairs(&self) -> Pairs<'_> {
        Pairs {
            rest: self.text.as_str(),
        }
    }
}

/// The members of an [`Extras`], scanned from its text.
pub(crate) struct Pairs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let name_end = string_end(self.rest.as_bytes(), 0)?;
        let name = &self.rest[..name_end];
        // Skip the ':'.
        let value_start = name_end + 1;
        let value_end = value_end(self.rest.as_bytes(), value_start);
        let value = self.rest.get(value_start..value_end)?;
        self.rest = self.rest.get(value_end + 1..).unwrap_or("");
        Some((name, value))
    }
}

/// The index just past the JSON string starting at `start` (a `"`).
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The index just past the compact JSON value starting at `start`: the
/// first `,` at depth 0, or the end.
fn value_end(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = string_end(b, i).unwrap_or(b.len());
                continue;
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// Appends valid JSON `raw` without the whitespace between tokens.
fn compact_into(out: &mut String, raw: &str) {
    let b = raw.as_bytes();
    let mut i = 0;
    let mut run = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let end = string_end(b, i).unwrap_or(b.len());
                i = end;
            }
            b' ' | b'\n' | b'\r' | b'\t' => {
                out.push_str(&raw[run..i]);
                i += 1;
                run = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&raw[run..]);
}

/// Writes compact JSON `raw` the way `serde_json`'s pretty printer lays a
/// value out (two spaces per level, `": "`, empty arrays and objects as
/// `[]` and `{}`), every new line starting with `pad` spaces. Strings and
/// numbers are written as they are.
pub(crate) fn write_indented(out: &mut dyn fmt::Write, raw: &str, pad: usize) -> fmt::Result {
    let b = raw.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    let newline = |out: &mut dyn fmt::Write, depth: usize| -> fmt::Result {
        out.write_char('\n')?;
        for _ in 0..pad + 2 * depth {
            out.write_char(' ')?;
        }
        Ok(())
    };
    while i < b.len() {
        match b[i] {
            b'"' => {
                let end = string_end(b, i).unwrap_or(b.len());
                out.write_str(&raw[i..end])?;
                i = end;
            }
            open @ (b'[' | b'{') => {
                let close = if open == b'[' { b']' } else { b'}' };
                if b.get(i + 1) == Some(&close) {
                    out.write_str(if open == b'[' { "[]" } else { "{}" })?;
                    i += 2;
                } else {
                    out.write_char(open as char)?;
                    depth += 1;
                    newline(out, depth)?;
                    i += 1;
                }
            }
            close @ (b']' | b'}') => {
                depth = depth.saturating_sub(1);
                newline(out, depth)?;
                out.write_char(close as char)?;
                i += 1;
            }
            b',' => {
                out.write_char(',')?;
                newline(out, depth)?;
                i += 1;
            }
            b':' => {
                out.write_str(": ")?;
                i += 1;
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b',' | b']' | b'}' | b':' | b'"') {
                    i += 1;
                }
                out.write_str(&raw[start..i])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn members_round_trip_through_the_text() {
        let mut e = Extras::default();
        e.push("a", &raw("[1, 2,\n {\"x\": \"y ,]\\\"\"}]"));
        e.push("b\"c", &raw("{}"));
        e.push("n", &raw("1.50"));
        let pairs: Vec<_> = e.pairs().collect();
        assert_eq!(
            pairs,
            [
                ("\"a\"", "[1,2,{\"x\":\"y ,]\\\"\"}]"),
                ("\"b\\\"c\"", "{}"),
                ("\"n\"", "1.50")
            ]
        );
        let map = e.to_map();
        assert_eq!(map["a"][2]["x"], "y ,]\"");
        assert_eq!(map["b\"c"], serde_json::json!({}));
    }

    #[test]
    fn indentation_matches_serde_json_pretty() {
        for text in [
            r#"[0,0,0]"#,
            r#"{"a":[1,{"b":[]},{}],"c":"d, [e]","f":{"g":null}}"#,
            r#"[[[]],[{}],"x"]"#,
            r#"7"#,
            r#""s""#,
        ] {
            let mut ours = String::new();
            write_indented(&mut ours, text, 4).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            let theirs = serde_json::to_string_pretty(&value)
                .unwrap()
                .replace('\n', "\n    ");
            // serde_json sorts object members; the inputs above are sorted.
            assert_eq!(ours, theirs, "{text}");
        }
    }
}

//! One logfmt line as one JSON object: keys in order of first appearance, a repeated key's
//! values as an array, a bare key as `true`, every value as a string (invalid UTF-8 replaced).

use logfmt::Pair;

/// Appends the JSON object for `line` to `out` (no newline).
pub fn write_line(out: &mut Vec<u8>, line: &[u8]) {
    let pairs: Vec<Pair<'_>> = logfmt::pairs(line).collect();
    out.push(b'{');
    let mut first = true;
    for (i, p) in pairs.iter().enumerate() {
        // A key already written with its first occurrence.
        if pairs[..i].iter().any(|q| q.key == p.key) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_string(out, p.key);
        out.push(b':');
        let same: Vec<&Pair<'_>> = pairs[i..].iter().filter(|q| q.key == p.key).collect();
        if let [only] = same.as_slice() {
            write_value(out, only);
        } else {
            out.push(b'[');
            for (j, q) in same.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                write_value(out, q);
            }
            out.push(b']');
        }
    }
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, p: &Pair<'_>) {
    match &p.value {
        None => out.extend_from_slice(b"true"),
        Some(v) => write_string(out, &v.unescaped()),
    }
}

/// A JSON string of `bytes`, invalid UTF-8 as U+FFFD.
fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::write_line;

    fn json(line: &[u8]) -> String {
        let mut out = Vec::new();
        write_line(&mut out, line);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn keys_in_order_repeats_as_arrays_bare_as_true() {
        assert_eq!(
            json(b"b=2 a=1 b=3 debug b"),
            r#"{"b":["2","3",true],"a":"1","debug":true}"#
        );
    }

    #[test]
    fn values_are_unescaped_then_json_escaped() {
        assert_eq!(
            json(br#"msg="say \"hi\"\n" path="C:\\x" e= q="""#),
            r#"{"msg":"say \"hi\"\n","path":"C:\\x","e":"","q":""}"#
        );
        assert_eq!(json(b"k=\"\\u0001\xff\""), "{\"k\":\"\\u0001\u{fffd}\"}");
    }
}

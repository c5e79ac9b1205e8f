//! `paas logfmt [FILE]...`: a logfmt-aware `jq`/`humanlog`. Lines are read as bytes; each is
//! printed as JSON (`--json`), coloured (on a terminal) or as it came (in a pipe), and
//! `--where` keeps the lines that match a filter. Lines that are not logfmt pass through.

mod json;
mod pretty;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;

/// Longest line parsed; a longer one is passed through unparsed (left out under `--where`)
/// and counted on standard error.
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to read, in order; `-` or none reads standard input.
    files: Vec<PathBuf>,
    /// Print each logfmt line as one JSON object: keys in order, repeated keys as arrays,
    /// bare keys as `true`, values as strings.
    #[arg(long)]
    json: bool,
    /// Keep only the lines that match this filter, e.g. `status>=500 service>1s`,
    /// `at=error or code=H12`, `path=/api/*` (see the logfmt crate's predicate docs).
    #[arg(long = "where", value_name = "FILTER", value_parser = parse_filter)]
    filter: Option<logfmt::Predicate>,
    /// When to colour the output: `auto` colours on a terminal unless NO_COLOR is set.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

fn parse_filter(s: &str) -> Result<logfmt::Predicate, String> {
    s.parse().map_err(|e: logfmt::PredicateError| e.to_string())
}

/// How each kept line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Color,
    Plain,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let format = match (args.json, color) {
        (true, _) => Format::Json,
        (false, true) => Format::Color,
        (false, false) => Format::Plain,
    };
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files
    };
    // Like cat: a file that cannot be opened is reported and skipped, and the exit code says so.
    let mut unreadable = false;
    let mut overlong = 0;
    let result = files.iter().try_for_each(|path| {
        let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            match File::open(path) {
                Ok(file) => Box::new(BufReader::with_capacity(64 * 1024, file)),
                Err(e) => {
                    eprintln!("paas: logfmt: {}: {e}", path.display());
                    unreadable = true;
                    return Ok(());
                }
            }
        };
        overlong += filter_lines(input, &mut out, format, args.filter.as_ref())
            .with_context(|| format!("logfmt: {}", path.display()))?;
        Ok(())
    });
    match result.and_then(|()| out.flush().context("logfmt: writing output")) {
        Ok(()) => {
            if overlong > 0 {
                let fate = if args.filter.is_some() {
                    "left out"
                } else {
                    "passed through unparsed"
                };
                eprintln!(
                    "paas: logfmt: {overlong} line(s) over {} MiB {fate}",
                    MAX_LINE >> 20
                );
            }
            Ok(if unreadable {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        // A closed pipe (`paas logfmt big.log | head`) is the reader's choice, not an error.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Reads `input` line by line and writes the kept lines in `format`. Returns how many lines
/// were too long to parse: passed through whole without a filter, left out with one.
fn filter_lines(
    mut input: impl BufRead,
    out: &mut impl Write,
    format: Format,
    filter: Option<&logfmt::Predicate>,
) -> anyhow::Result<u64> {
    let mut line = Vec::with_capacity(4096);
    let mut rendered = Vec::with_capacity(4096);
    let mut overlong = 0;
    // Inside a line longer than MAX_LINE, read piece by piece.
    let mut in_overlong = false;
    loop {
        line.clear();
        let n = input
            .by_ref()
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(overlong);
        }
        let complete = line.last() == Some(&b'\n');
        if in_overlong || (!complete && n == MAX_LINE) {
            if !in_overlong {
                overlong += 1;
            }
            in_overlong = !complete;
            if filter.is_none() {
                out.write_all(&line)?;
            }
            continue;
        }
        let text = trim_newline(&line);
        if filter.is_some_and(|f| !f.matches(text)) {
            continue;
        }
        rendered.clear();
        match format {
            Format::Json if is_logfmt(text) => json::write_line(&mut rendered, text),
            Format::Color if is_logfmt(text) => pretty::write_line(&mut rendered, text),
            _ => rendered.extend_from_slice(text),
        }
        rendered.push(b'\n');
        out.write_all(&rendered)?;
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A line is logfmt when go-logfmt would read it and it has at least one `key=value`: plain
/// text such as `State changed from starting to up` is all bare words.
fn is_logfmt(line: &[u8]) -> bool {
    logfmt::validate(line).is_ok() && logfmt::pairs(line).any(|p| p.value.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(input: &str, format: Format, filter: Option<&str>) -> String {
        let filter = filter.map(|f| f.parse().unwrap());
        let mut out = Vec::new();
        filter_lines(input.as_bytes(), &mut out, format, filter.as_ref()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_output_keeps_lines_as_they_came() {
        let input =
            "at=info  status=200\r\nState changed from starting to up\nat=error status=503\n";
        assert_eq!(
            render(input, Format::Plain, None),
            "at=info  status=200\nState changed from starting to up\nat=error status=503\n"
        );
        assert_eq!(
            render(input, Format::Plain, Some("status>=500")),
            "at=error status=503\n"
        );
    }

    #[test]
    fn last_line_without_newline() {
        assert_eq!(render("a=1\nb=2", Format::Plain, None), "a=1\nb=2\n");
    }

    #[test]
    fn text_lines_pass_through_json_untouched() {
        let out = render(
            "Starting process with command `bin/web`\nk=v\n",
            Format::Json,
            None,
        );
        assert_eq!(
            out,
            "Starting process with command `bin/web`\n{\"k\":\"v\"}\n"
        );
    }

    #[test]
    fn overlong_lines_pass_through_whole_and_are_counted() {
        let long = format!("k={}=y z=2\nz=1\n", "x".repeat(2 * MAX_LINE + 10));
        let out = render(&long, Format::Json, None);
        let want = format!(
            "k={}=y z=2\n{{\"z\":\"1\"}}\n",
            "x".repeat(2 * MAX_LINE + 10)
        );
        assert!(out == want, "the long line whole, then the next one parsed");
        let mut sink = Vec::new();
        let overlong = filter_lines(long.as_bytes(), &mut sink, Format::Plain, None).unwrap();
        assert_eq!(overlong, 1);
    }

    #[test]
    fn overlong_lines_are_left_out_under_a_filter() {
        let long = format!("z=2 k={}\nz=1\n", "x".repeat(MAX_LINE + 10));
        assert_eq!(render(&long, Format::Plain, Some("z=2")), "");
        assert_eq!(render(&long, Format::Plain, Some("z=1")), "z=1\n");
    }
}

//! Counts the pairs of a generated corpus, or of a file: a fixed workload for callgrind and
//! perf (`valgrind --tool=callgrind target/release/examples/count_pairs 100000`).

fn main() {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "100000".to_owned());
    let text = match arg.parse::<usize>() {
        Ok(n) => logfmt::corpus::Corpus::new(logfmt::corpus::Mix::Router, 42)
            .lines(n)
            .into_bytes(),
        Err(_) => std::fs::read(&arg).unwrap_or_else(|e| {
            eprintln!("count_pairs: {arg}: {e}");
            std::process::exit(1)
        }),
    };
    let started = std::time::Instant::now();
    let mut pairs = 0usize;
    for line in text.split(|&b| b == b'\n') {
        pairs += logfmt::pairs(line).count();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{pairs} pairs, {} bytes, {:.0} MB/s",
        text.len(),
        text.len() as f64 / secs / 1e6
    );
}

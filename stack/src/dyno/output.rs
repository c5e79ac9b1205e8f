//! A dyno's output: its stdout and stderr read line by line into the router as `app[web.1]`
//! lines. A line longer than the limit is cut into pieces of the limit (each a line, none
//! lost), a last line without a newline is still a line, and bytes are kept as they are.

use bytes::Bytes;
use logplex::{EmitError, Emitter};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest line a dyno writes before it is cut (Logplex's 10,000 B split broke structured
/// lines; this is the router's frame limit instead).
pub const MAX_LINE: usize = 64 * 1024;

/// What reading one stream came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputCounts {
    /// Lines handed to the router.
    pub lines: u64,
    /// Lines the router refused (over the app's rate budget, or the app gone): counted there.
    pub refused: u64,
    /// Lines cut because they were longer than the limit (each piece counts as a line).
    pub cut: u64,
}

/// Reads `stream` to its end, emitting each line as `process`, at most `max_rate` lines a
/// second (0: no limit). Past that rate reading pauses, so a dyno flooding its output is slowed
/// (its writes wait on the pipe) rather than taking the app's whole rate budget from the other
/// dynos; nothing is dropped here.
pub async fn pump<R: AsyncRead + Unpin>(
    mut stream: R,
    emitter: Emitter,
    process: String,
    max_line: usize,
    max_rate: u64,
) -> OutputCounts {
    let mut pace = Pace::new(max_rate);
    let mut counts = OutputCounts::default();
    let mut pending: Vec<u8> = Vec::with_capacity(4096);
    let mut buf = vec![0u8; 16 * 1024];
    let emit = |line: &[u8], counts: &mut OutputCounts| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        counts.lines += 1;
        match emitter.try_emit(&process, Bytes::copy_from_slice(line)) {
            Ok(()) => {}
            Err(EmitError::Full(_) | EmitError::Closed(_)) => counts.refused += 1,
        }
    };
    // Whether the line being read has already had a piece emitted (it is being cut).
    let mut cutting = false;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &pending[start..]) {
            let line = &pending[start..start + nl];
            if line.len() > max_line && !cutting {
                counts.cut += 1;
            }
            for piece in line.chunks(max_line.max(1)) {
                emit(piece, &mut counts);
            }
            if line.is_empty() {
                emit(line, &mut counts);
            }
            cutting = false;
            start += nl + 1;
            if counts.lines % 64 == 0 {
                pace.after(counts.lines).await;
            }
        }
        pending.drain(..start);
        pace.after(counts.lines).await;
        // A line still without its newline past the limit: send what there is, in pieces.
        while pending.len() > max_line {
            if !cutting {
                counts.cut += 1;
                cutting = true;
            }
            emit(&pending[..max_line], &mut counts);
            pending.drain(..max_line);
        }
    }
    if !pending.is_empty() {
        emit(&pending, &mut counts);
    }
    counts
}

/// A dyno's output rate: a token bucket of lines holding one second's burst (GCRA: `paid_until`
/// is when the lines so far would be paid for at the rate; a line may go while that is at most
/// a second ahead). A quiet spell fills the bucket, never past one second's lines, and never
/// puts it in debt: the first lines after a pause go at once.
#[derive(Debug)]
struct Pace {
    per_second: u64,
    /// Lines accounted for so far.
    paid: u64,
    /// When those lines are paid for.
    paid_until: tokio::time::Instant,
}

/// The burst a dyno may write at once (one second's lines).
const BURST: std::time::Duration = std::time::Duration::from_secs(1);

impl Pace {
    fn new(per_second: u64) -> Self {
        Pace {
            per_second,
            paid: 0,
            paid_until: tokio::time::Instant::now(),
        }
    }

    /// After `lines` in all: waits until they are within the rate (plus one second's burst).
    async fn after(&mut self, lines: u64) {
        if let Some(until) = self.due(lines, tokio::time::Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
    }

    /// After `lines` in all, at `now`: when reading may go on, if not at once.
    fn due(&mut self, lines: u64, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        if self.per_second == 0 {
            return None;
        }
        let new = lines.saturating_sub(self.paid);
        self.paid = self.paid.max(lines);
        // Time not used is credit, up to the burst: paid_until never lags `now`.
        self.paid_until = self.paid_until.max(now)
            + std::time::Duration::from_secs_f64(new as f64 / self.per_second as f64);
        let ahead = self.paid_until.saturating_duration_since(now);
        (ahead > BURST).then(|| self.paid_until - BURST)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use logplex::{LineFilter, Registry, Router, RouterConfig};

    /// The app's history as `source[process]: message`.
    pub(crate) fn shown(router: &Router) -> Vec<String> {
        router
            .channel("shop")
            .unwrap()
            .history(100, &LineFilter::default())
            .iter()
            .map(|l| {
                format!(
                    "{}[{}]: {}",
                    String::from_utf8_lossy(&l.source),
                    String::from_utf8_lossy(&l.process),
                    String::from_utf8_lossy(&l.message)
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn lines_partial_lines_and_long_lines() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        let emitter = router.emitter("shop", "app").unwrap();
        let input: &[u8] = b"one\r\ntwo\n0123456789abc\nlast without newline";
        let counts = pump(input, emitter, "web.1".into(), 10, 0).await;
        assert_eq!(
            shown(&router),
            [
                "app[web.1]: one",
                "app[web.1]: two",
                "app[web.1]: 0123456789",
                "app[web.1]: abc",
                "app[web.1]: last witho",
                "app[web.1]: ut newline",
            ]
        );
        assert_eq!(
            counts,
            OutputCounts {
                lines: 6,
                refused: 0,
                cut: 2
            }
        );
    }

    #[tokio::test]
    async fn a_real_process_output_and_its_stderr() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "printf 'hello\\nno newline'; echo oops >&2"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let e = router.emitter("shop", "app").unwrap();
        let (a, b) = tokio::join!(
            pump(out, e.clone(), "web.1".into(), MAX_LINE, 0),
            pump(err, e, "web.1".into(), MAX_LINE, 0)
        );
        assert_eq!((a.lines, b.lines), (2, 1));
        let mut got = shown(&router);
        got.sort();
        assert_eq!(
            got,
            [
                "app[web.1]: hello",
                "app[web.1]: no newline",
                "app[web.1]: oops"
            ]
        );
        child.wait().await.unwrap();
    }

    #[tokio::test]
    async fn a_flooding_dyno_is_slowed_and_a_quiet_one_still_gets_through() {
        // The app's budget: what the flood would take whole without its own pace.
        let config = RouterConfig {
            app_rate: 4000,
            history_lines: 10_000,
            ..RouterConfig::default()
        };
        let router = Router::new(config, Registry::in_memory());
        router.create_app("shop").unwrap();
        let e = router.emitter("shop", "app").unwrap();
        let flood: Vec<u8> = b"y\n".repeat(6000);
        let start = std::time::Instant::now();
        let flooding = tokio::spawn(pump(
            std::io::Cursor::new(flood),
            e.clone(),
            "worker.1".into(),
            MAX_LINE,
            2000,
        ));
        let (mut quiet_w, quiet_r) = tokio::io::duplex(1024);
        let quiet = tokio::spawn(pump(quiet_r, e, "web.1".into(), MAX_LINE, 2000));
        for i in 0..5 {
            use tokio::io::AsyncWriteExt as _;
            quiet_w
                .write_all(format!("quiet {i}\n").as_bytes())
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        drop(quiet_w);
        let quiet = quiet.await.unwrap();
        let flood = flooding.await.unwrap();
        // Nothing refused by the app's budget, from either: the flood waited for its pace
        // (6000 lines at 2000 a second, one second's burst: about 2 s).
        assert_eq!((quiet.lines, quiet.refused), (5, 0));
        assert_eq!((flood.lines, flood.refused), (6000, 0));
        assert!(
            start.elapsed() >= std::time::Duration::from_millis(1800),
            "{:?}",
            start.elapsed()
        );
        let kept = router
            .channel("shop")
            .unwrap()
            .history(10_000, &LineFilter::default());
        let quiet: Vec<_> = kept.iter().filter(|l| &l.process[..] == b"web.1").collect();
        assert_eq!(quiet.len(), 5);
    }

    #[test]
    fn pace_bursts_a_second_then_paces_and_a_quiet_spell_gives_credit_not_debt() {
        let t0 = tokio::time::Instant::now();
        let ms = std::time::Duration::from_millis;
        let mut pace = Pace::new(10);
        pace.paid_until = t0;
        // One second's lines at once, then one every 100 ms.
        assert_eq!(pace.due(10, t0), None);
        assert_eq!(pace.due(11, t0), Some(t0 + ms(100)));
        // Quiet for five seconds: the next second's lines go at once, none waits.
        for lines in 12..=21 {
            assert_eq!(pace.due(lines, t0 + ms(5000)), None, "line {lines}");
        }
        assert_eq!(pace.due(22, t0 + ms(5000)), Some(t0 + ms(5100)));
        // A trickle below the rate never waits, however long it goes on.
        let mut pace = Pace::new(10);
        pace.paid_until = t0;
        for (i, lines) in (1..200u64).enumerate() {
            let now = t0 + ms(2000 * i as u64);
            assert_eq!(pace.due(lines, now), None, "line {lines}");
        }
    }

    /// Regression (issue 17): after a quiet spell the pace put the dyno a second in debt, so the
    /// pump slept after the next line and a third written within that second (a request's few
    /// lines) was held until it woke. A dyno that writes a line every 2 s, or a few lines
    /// 100 ms apart every 2 s, has each in the stream at once. On tokio's paused clock: the
    /// delay measured is the pump's own, not the machine's.
    #[tokio::test(start_paused = true)]
    async fn a_quiet_dynos_lines_reach_the_stream_at_once() {
        use tokio::io::AsyncWriteExt as _;
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        let emitter = router.emitter("shop", "app").unwrap();
        let (mut w, r) = tokio::io::duplex(1024);
        // A low rate, so that a second's debt would show within a few lines.
        let pumping = tokio::spawn(pump(r, emitter, "web.1".into(), MAX_LINE, 5));
        let ms = std::time::Duration::from_millis;
        let mut worst = std::time::Duration::ZERO;
        for i in 0..6 {
            tokio::time::sleep(ms(2000)).await;
            for part in ["start", "query", "done"] {
                let line = format!("{part} {i}");
                w.write_all(format!("{line}\n").as_bytes()).await.unwrap();
                let written = tokio::time::Instant::now();
                while !shown(&router).contains(&format!("app[web.1]: {line}")) {
                    tokio::time::sleep(ms(1)).await;
                }
                worst = worst.max(written.elapsed());
                tokio::time::sleep(ms(100)).await;
            }
        }
        drop(w);
        assert_eq!(pumping.await.unwrap().lines, 18);
        assert!(worst <= ms(50), "a line waited {worst:?}");
    }
}

//! A real rsyslogd for drain tests: its own config, work directory and port on loopback,
//! receiving RFC 6587 octet-counted syslog over TCP (or TLS with GnuTLS), writing each message
//! as `HOSTNAME|APP-NAME|PROCID|MSG` to a file the test reads.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::port::PortHold;

/// A running rsyslogd.
pub struct Rsyslog {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
    dir: PathBuf,
}

/// PEM files for rsyslog's TLS listener.
pub struct TlsFiles<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// Whether process `pid` holds a socket listening on loopback TCP `port` (its own, not another
/// process's that took the port first).
fn listens(pid: u32, port: u16) -> bool {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|row| {
                let f: Vec<&str> = row.split_whitespace().collect();
                f.len() > 9
                    && f[3] == "0A"
                    && f[1].rsplit(':').next() == Some(&format!("{port:04X}"))
                    && inodes.iter().any(|i| i == f[9])
            })
    })
}

impl Rsyslog {
    /// Starts rsyslogd in `dir` on a free port (held bound, not listening, while rsyslog
    /// listens beside it: `support::port`), over TLS when given files.
    pub fn start_free(dir: &Path, tls: Option<TlsFiles<'_>>) -> Rsyslog {
        for _ in 0..5 {
            let hold = PortHold::new();
            let port = hold.port();
            let tls = tls.as_ref().map(|t| TlsFiles {
                ca: t.ca,
                cert: t.cert,
                key: t.key,
            });
            if let Some(r) = Rsyslog::try_start(dir, port, tls, false) {
                return r;
            }
        }
        panic!("rsyslogd never listened on a port of its own");
    }

    /// Starts rsyslogd in `dir` on `port`, over TLS when given files.
    pub fn start(dir: &Path, port: u16, tls: Option<TlsFiles<'_>>) -> Rsyslog {
        Rsyslog::try_start(dir, port, tls, false)
            .unwrap_or_else(|| panic!("rsyslogd never listened on {port}"))
    }

    /// Starts rsyslogd in `dir` taking RELP (imrelp, Debian's rsyslog-relp) on `port`.
    pub fn start_relp(dir: &Path, port: u16) -> Rsyslog {
        Rsyslog::try_start(dir, port, None, true)
            .unwrap_or_else(|| panic!("rsyslogd never listened for RELP on {port}"))
    }

    fn try_start(dir: &Path, port: u16, tls: Option<TlsFiles<'_>>, relp: bool) -> Option<Rsyslog> {
        std::fs::create_dir_all(dir).expect("rsyslog dir");
        let out = dir.join("out.log");
        let mut global = format!("global(workDirectory=\"{}\"", dir.display());
        let mut module = "module(load=\"imtcp\"".to_owned();
        if let Some(t) = &tls {
            global.push_str(&format!(
                " DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            ));
            module.push_str(" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\"");
        }
        global.push(')');
        module.push(')');
        let kind = if relp { "imrelp" } else { "imtcp" };
        if relp {
            module = "module(load=\"imrelp\")".to_owned();
        }
        let config = format!(
            "{global}\n{module}\ninput(type=\"{kind}\" port=\"{port}\" ruleset=\"r\")\n\
             template(name=\"raw\" type=\"string\" string=\"%hostname%|%app-name%|%procid%|%msg%\\n\")\n\
             ruleset(name=\"r\") {{ action(type=\"omfile\" file=\"{}\" template=\"raw\" asyncWriting=\"off\" flushOnTXEnd=\"on\") }}\n",
            out.display()
        );
        let conf = dir.join("rsyslog.conf");
        std::fs::write(&conf, config).expect("rsyslog config");
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("rsyslog.stderr"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start rsyslogd (Debian's rsyslog)");
        let r = Rsyslog {
            child,
            port,
            out,
            dir: dir.to_owned(),
        };
        let start = Instant::now();
        let pid = r.child.id();
        while !listens(pid, port) {
            if start.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(r)
    }

    /// rsyslogd's process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The messages received so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until at least `n` messages arrived (10 s at most), and returns them.
    pub fn wait_lines(&self, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.lines();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "rsyslog got {} of {n} lines: {:?}",
                lines.len(),
                lines.iter().rev().take(3).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

//! A real rsyslogd for drain tests: its own config, work directory and port on loopback,
//! receiving RFC 6587 octet-counted syslog over TCP (or TLS with GnuTLS), writing each message
//! as `HOSTNAME|APP-NAME|PROCID|MSG` to a file the test reads.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// A free loopback TCP port (bound and released: rsyslog binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Rsyslog {
    /// Starts rsyslogd in `dir` on `port`, over TLS when given files.
    pub fn start(dir: &Path, port: u16, tls: Option<TlsFiles<'_>>) -> Rsyslog {
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
        let config = format!(
            "{global}\n{module}\ninput(type=\"imtcp\" port=\"{port}\" ruleset=\"r\")\n\
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
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "rsyslogd never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
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

//! Child processes of the real binaries, killed when the guard drops, with their logs kept in
//! files so a failing test can show them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Spawn `cmd`, sending stdout and stderr to a log file.
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        let log = std::env::temp_dir().join(format!(
            "{}.log",
            crate::unique(&format!("pgfleet-{name}-"))
        ));
        let file = std::fs::File::create(&log).expect("create log file");
        let child = cmd
            .stdout(Stdio::from(file.try_clone().expect("dup log file")))
            .stderr(Stdio::from(file))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Self {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of one series on this process's `/metrics` (its address is in its log), e.g.
    /// `pgfleet_worker_tasks_in_flight` or `pgfleet_coordinator_task_queue_messages{state="ready"}`.
    pub async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let log = strip_ansi(&self.logs());
        let addr = log
            .lines()
            .find(|l| l.contains("serving /metrics"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .map(|a| a.trim_matches('"').to_string())
            .ok_or_else(|| {
                anyhow::anyhow!("no metrics address in the log of {}:\n{log}", self.name)
            })?;
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        stream
            .write_all(
                format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        body.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .filter(|rest| rest.starts_with(' '))
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .ok_or_else(|| anyhow::anyhow!("no {series} in the metrics of {} ({addr})", self.name))
    }

    /// SIGKILL: the crash case.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait up to `secs` for a clean exit; returns the exit status code.
    pub fn terminate(&mut self, secs: u64) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- {} log ({}) ----\n{}",
                self.name,
                self.log.display(),
                self.logs()
            );
        }
    }
}

/// A fleet for one test: a `coordinator serve` and workers sharing a private queue namespace
/// and state database, so parallel tests never see each other's messages.
pub struct Fleet {
    pub namespace: String,
    pub state_url: String,
    pub coordinator: Proc,
    pub workers: Vec<Proc>,
}

impl Fleet {
    pub fn start(state_url: &str, workers: usize, concurrency: u16) -> Self {
        Self::start_with(state_url, workers, concurrency, &[])
    }

    /// [`Fleet::start`] with extra environment variables for `coordinator serve`.
    pub fn start_with(
        state_url: &str,
        workers: usize,
        concurrency: u16,
        serve_env: &[(&str, &str)],
    ) -> Self {
        crate::set_aws_env();
        let namespace = crate::unique("pgfleet-test-");
        let mut serve = Self::serve_cmd(state_url, &namespace);
        serve.envs(serve_env.iter().copied());
        let coordinator = Proc::spawn("coordinator", serve);
        wait_for_state_schema(state_url, &coordinator);
        let workers = (0..workers)
            .map(|i| {
                Proc::spawn(
                    &format!("worker{i}"),
                    Self::worker_cmd(&namespace, concurrency, i),
                )
            })
            .collect();
        Self {
            namespace,
            state_url: state_url.to_string(),
            coordinator,
            workers,
        }
    }

    pub fn serve_cmd(state_url: &str, namespace: &str) -> Command {
        let mut cmd = Command::new(crate::bin("coordinator"));
        cmd.args(["serve", "--metrics-addr", "127.0.0.1:0"])
            .env("PGFLEET_STATE_URL", state_url)
            .env("PGFLEET_AMQP_URL", crate::amqp_url())
            .env("PGFLEET_NAMESPACE", namespace);
        cmd
    }

    pub fn worker_cmd(namespace: &str, concurrency: u16, i: usize) -> Command {
        let mut cmd = Command::new(crate::bin("worker"));
        cmd.args(["--metrics-addr", "127.0.0.1:0"])
            .arg("--concurrency")
            .arg(concurrency.to_string())
            .arg("--name")
            .arg(format!("w{i}"))
            .env("PGFLEET_AMQP_URL", crate::amqp_url())
            .env("PGFLEET_NAMESPACE", namespace);
        cmd
    }

    /// Delete this fleet's queues and exchange: every test namespace creates four quorum
    /// queues, and hundreds left behind slow every later broker start (each recovers its log).
    fn delete_topology(&self) {
        let Ok(topology) = protocol::topology::Topology::new(&self.namespace) else {
            return;
        };
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let url = crate::amqp_url();
                let connect = lapin::Connection::connect(&url, Default::default());
                let Ok(Ok(conn)) =
                    tokio::time::timeout(std::time::Duration::from_secs(10), connect).await
                else {
                    return;
                };
                for queue in [&topology.tasks, &topology.results, &topology.dead_letters] {
                    // A fresh channel each: a failed delete closes its channel.
                    if let Ok(ch) = conn.create_channel().await {
                        let _ = ch
                            .queue_delete(queue.as_str().into(), Default::default())
                            .await;
                    }
                }
                if let Ok(ch) = conn.create_channel().await {
                    let _ = ch
                        .exchange_delete(
                            topology.dead_letter_exchange.as_str().into(),
                            Default::default(),
                        )
                        .await;
                }
                let _ = conn.close(200, "test cleanup".into()).await;
            });
        });
        let _ = cleanup.join();
    }

    /// `coordinator <args>` against this fleet's state database; returns (status, stdout, stderr).
    pub fn coordinator(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(crate::bin("coordinator"))
            .args(args)
            .env("PGFLEET_STATE_URL", &self.state_url)
            .output()
            .expect("run coordinator");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Stop the processes first (their own Drop would run after this), then the queues.
        self.coordinator.kill();
        for w in &mut self.workers {
            w.kill();
        }
        self.delete_topology();
    }
}

/// Wait until `serve` has created its state schema: `submit`, `status` and `cancel` need it
/// and, unlike `serve`, never create it.
pub fn wait_for_state_schema(state_url: &str, serve: &Proc) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = Command::new(crate::bin("coordinator"))
            .args(["status", "--json"])
            .env("PGFLEET_STATE_URL", state_url)
            .output()
            .expect("run coordinator status");
        if out.status.success() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`coordinator serve` did not set up the state database within 60 s: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            serve.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A log without terminal colour codes (`ESC [ … letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

//! A Ballista cluster of `fantrace-cluster` processes on loopback: one scheduler and N
//! executors, stopped when dropped. Every node gets the S3 server's credentials in its
//! environment, as a fleet's nodes would get theirs.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::object_store_server::free_port;

pub struct Cluster {
    children: Vec<Child>,
    pub scheduler_port: u16,
    log_dir: std::path::PathBuf,
    executors: usize,
}

impl Cluster {
    /// Starts a scheduler and `executors` executors, each running at most `tasks` tasks at
    /// once, and waits until they listen. Logs go to `log_dir`.
    pub fn start(
        binary: &Path,
        executors: usize,
        tasks: usize,
        env: &[(&'static str, String)],
        log_dir: &Path,
    ) -> Cluster {
        std::fs::create_dir_all(log_dir).expect("creating the cluster log directory");
        let scheduler_port = free_port();
        let mut cluster = Cluster {
            children: Vec::new(),
            scheduler_port,
            log_dir: log_dir.to_path_buf(),
            executors,
        };
        let spawn = |args: Vec<String>, log: &str| -> Child {
            let log = std::fs::File::create(log_dir.join(log)).expect("cluster log file");
            Command::new(binary)
                .args(&args)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                // Executors log each task they run: what `tasks_run` counts.
                .env("RUST_LOG", "warn,ballista_executor::executor_server=info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting fantrace-cluster")
        };
        cluster.children.push(spawn(
            vec![
                "scheduler".into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--port".into(),
                scheduler_port.to_string(),
            ],
            "scheduler.log",
        ));
        wait_for_port(scheduler_port, "the scheduler", log_dir);
        for i in 0..executors {
            let (flight, grpc) = (free_port(), free_port());
            cluster.children.push(spawn(
                vec![
                    "executor".into(),
                    "--scheduler".into(),
                    format!("127.0.0.1:{scheduler_port}"),
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    flight.to_string(),
                    "--grpc-port".into(),
                    grpc.to_string(),
                    "--concurrent-tasks".into(),
                    tasks.to_string(),
                    "--work-dir".into(),
                    log_dir.join(format!("executor-{i}")).display().to_string(),
                ],
                &format!("executor-{i}.log"),
            ));
            wait_for_port(flight, "an executor", log_dir);
        }
        cluster
    }

    /// How many tasks each executor ran so far, as its log says.
    pub fn tasks_run(&self) -> Vec<usize> {
        (0..self.executors)
            .map(|i| {
                std::fs::read_to_string(self.log_dir.join(format!("executor-{i}.log")))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("Execute task"))
                    .count()
            })
            .collect()
    }

    pub fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.scheduler_port)
    }
}

fn wait_for_port(port: u16, what: &str, log_dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} never listened on port {port}; see the logs in {}",
        log_dir.display()
    );
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

//! A real S3-compatible server for the fleet tests: Garage (installed by `./fantrace.sh test`),
//! started by the test on loopback ports of its own, with one key and one bucket, and stopped
//! (or killed, and started again on the same data) when the test says.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every fleet test writes to.
pub const BUCKET: &str = "fleet";
/// A fixed key: Garage's form is `GK` and 24 hex digits, the secret 64.
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// S3 clients sign requests for a region; Garage checks it is its own.
pub const REGION: &str = "us-east-1";

pub struct Garage {
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    pub s3_port: u16,
    pub endpoint: String,
}

/// Where `./fantrace.sh test` installs Garage, or `garage` on PATH. Outside CI a test without
/// it returns early with a note; with `CI=true` it fails.
pub fn garage_binary(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("FANTRACE_GARAGE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("garage"))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        if crate::harness::in_ci() {
            panic!("{test}: CI=true but garage is not installed (./fantrace.sh test installs it)");
        }
        eprintln!("{test}: NOT RUN: garage is not installed (./fantrace.sh test installs it)");
    }
    found
}

/// A port nobody listens on now (the kernel's pick, released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Garage {
    /// Starts a one-node Garage under `dir` with [`BUCKET`] and the fixed key.
    pub fn start(binary: &Path, dir: &Path) -> Garage {
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        std::fs::create_dir_all(dir).expect("creating the garage directory");
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "fantrace-test-admin"
"#,
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
                secret = "f".repeat(64),
            ),
        )
        .expect("writing garage.toml");
        let mut garage = Garage {
            dir: dir.to_path_buf(),
            config,
            child: None,
            s3_port: s3,
            endpoint: format!("http://127.0.0.1:{s3}"),
        };
        garage.spawn(binary);
        let node = garage.cli(binary, &["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap_or("").to_string();
        garage.cli(
            binary,
            &["layout", "assign", "-z", "dc1", "-c", "1G", &node],
        );
        garage.cli(binary, &["layout", "apply", "--version", "1"]);
        garage.cli(
            binary,
            &["key", "import", "--yes", "-n", "fantrace", KEY_ID, SECRET],
        );
        garage.cli(binary, &["bucket", "create", BUCKET]);
        garage.cli(
            binary,
            &[
                "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
            ],
        );
        garage.wait_for_s3();
        garage
    }

    fn spawn(&mut self, binary: &Path) {
        let log = std::fs::File::create(self.dir.join("garage.log")).expect("garage log file");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            // Each S3 request is logged at info: what `s3_requests` counts.
            .env("RUST_LOG", "garage=warn,garage_api_common=info")
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting garage");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if Command::new(binary)
                .arg("-c")
                .arg(&self.config)
                .arg("status")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "garage did not start; see {}",
            self.dir.join("garage.log").display()
        );
    }

    fn cli(&self, binary: &Path, args: &[&str]) -> String {
        let out = Command::new(binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("running the garage CLI");
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the S3 port answers (the layout takes a moment to apply).
    fn wait_for_s3(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("garage's S3 port {} never opened", self.s3_port);
    }

    /// Kills the server at once (SIGKILL: an outage, not a shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the killed server again on the same data and ports.
    pub fn restart(&mut self, binary: &Path) {
        self.kill();
        self.spawn(binary);
        self.wait_for_s3();
    }

    /// How many S3 requests the server received so far, by kind (`LIST`, `GET`, `HEAD`,
    /// `PUT`...), as the server's own log records each one.
    pub fn s3_requests(&self) -> std::collections::BTreeMap<String, u64> {
        // The log line is written as the request is taken; a moment lets the last one land.
        std::thread::sleep(Duration::from_millis(300));
        let log = std::fs::read_to_string(self.dir.join("garage.log")).expect("reading garage.log");
        let mut out = std::collections::BTreeMap::new();
        for line in log.lines() {
            let Some((_, request)) = line.split_once(&format!("(key {KEY_ID}) ")) else {
                continue;
            };
            let mut parts = request.split(' ');
            let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
                continue;
            };
            let kind = if method == "GET" && target.contains("list-type=") {
                "LIST"
            } else {
                method
            };
            *out.entry(kind.to_string()).or_insert(0) += 1;
        }
        out
    }

    /// The environment an S3 client of this server needs.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}

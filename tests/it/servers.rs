//! Real Apache servers the tests start on loopback from the jars scripts/servers.sh copies out of
//! Maven Central: Apache Kafka in KRaft combined mode (broker and controller in one JVM) and an
//! Apache Cassandra node. Each one runs in a temp dir of its own (config, data, log) on ports the
//! test picks, and is killed (and its dir removed) when dropped. A server that does not come up
//! fails the test with the tail of its log.

use crate::upstreams::{free_port, home_tool};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KAFKA_START_SECS: u64 = 120;
const CASSANDRA_START_SECS: u64 = 240;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The lib dir of a server: $`env`, else where scripts/servers.sh puts the version named in
/// tests/servers/`name`/pom.xml.
fn server_lib(env: &str, name: &str, property: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let pom = std::fs::read_to_string(repo_file(&format!("tests/servers/{name}/pom.xml"))).unwrap();
    let (open, close) = (format!("<{property}>"), format!("</{property}>"));
    let start = pom.find(&open).expect("version property in the pom") + open.len();
    let version = &pom[start..start + pom[start..].find(&close).unwrap()];
    let tools = std::env::var("OUTPOST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/outpost"));
    let dir = tools.join(format!("servers/{name}-{version}"));
    assert!(
        dir.join(".complete").exists(),
        "{name} {version} is not installed in {}: run scripts/servers.sh (scripts/test.sh does) or set {env}",
        dir.display()
    );
    dir.join("lib")
}

fn java() -> PathBuf {
    match std::env::var("JAVA_HOME") {
        Ok(home) if Path::new(&home).join("bin/java").exists() => Path::new(&home).join("bin/java"),
        _ => PathBuf::from("java"),
    }
}

fn classpath(lib: &Path) -> String {
    format!("{}/*", lib.display())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A JVM the test started; killed and reaped when dropped.
struct Jvm {
    child: Child,
    log: PathBuf,
}

impl Jvm {
    fn spawn(mut cmd: Command, log: PathBuf) -> Jvm {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd.stdout(out).stderr(err).stdin(Stdio::null()).spawn().expect("java starts");
        Jvm { child, log }
    }

    /// Panics with the log's tail if the JVM has exited.
    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{what} exited during start-up ({status}); {}:\n{}", self.log.display(), tail(&self.log, 60));
        }
    }
}

impl Drop for Jvm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ready` every 100 ms until it holds, the JVM exits or `secs` pass.
async fn wait_ready<F, Fut>(jvm: &mut Jvm, what: &str, secs: u64, extra_log: &Path, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        jvm.assert_running(what);
        if ready().await {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what} not ready after {secs} s; {}:\n{}\n{}:\n{}",
                jvm.log.display(),
                tail(&jvm.log, 40),
                extra_log.display(),
                tail(extra_log, 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).map(|t| t.contains(needle)).unwrap_or(false)
}

/// A random Kafka cluster id, as `kafka-storage random-uuid` prints it: 16 bytes, base64url
/// without padding.
fn kafka_cluster_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fastrand::u128(..).to_be_bytes())
}

/// A test CA and a server certificate it signed for 127.0.0.1 and localhost, made with the
/// openssl CLI (EC P-256, PEM, unencrypted PKCS#8 key).
pub struct TestCa {
    /// The CA certificate (what a client trusts: SSL_CERT_FILE for Outpost).
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        openssl(
            &[
                &["req", "-x509", "-subj", "/CN=outpost test CA", "-days", "2"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem"],
            ]
            .concat(),
        );
        openssl(
            &[&["req", "-subj", "/CN=localhost"][..], &ec, &["-keyout", "server.key", "-out", "server.csr"]].concat(),
        );
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        TestCa { ca: dir.join("ca.pem"), server_cert: dir.join("server.pem"), server_key: dir.join("server.key") }
    }
}

#[derive(Clone, Debug, Default)]
pub struct KafkaOpts {
    /// The client listener's port (picked with free_port() when None).
    pub port: Option<u16>,
    /// The port the broker tells clients to connect to (a Proxy in front of it); `port` when None.
    pub advertised_port: Option<u16>,
    /// `auto.create.topics.enable` (off by default: Outpost creates its topics).
    pub auto_create_topics: bool,
    /// A second client listener, SASL_SSL with SCRAM-SHA-512 for these (user, password) pairs
    /// (created at format time) and a certificate from a test CA.
    pub scram_users: Vec<(String, String)>,
    /// Lines appended to server.properties (a later line overrides an earlier one).
    pub extra_properties: String,
}

/// Apache Kafka 4 in KRaft combined mode, node 1, one PLAINTEXT client listener and a CONTROLLER
/// listener of its own, all on 127.0.0.1.
pub struct ApacheKafka {
    /// Killed on drop, before `dir` is removed.
    _jvm: Jvm,
    lib: PathBuf,
    pub port: u16,
    /// The SASL_SSL listener's port, when `scram_users` asked for one.
    pub sasl_ssl_port: Option<u16>,
    /// The CA that signed the SASL_SSL listener's certificate.
    pub ca: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl ApacheKafka {
    pub async fn start(opts: KafkaOpts) -> ApacheKafka {
        let started = Instant::now();
        let lib = server_lib("OUTPOST_KAFKA_LIB", "kafka", "kafka.version");
        let dir = tempfile::Builder::new().prefix("outpost-kafka-").tempdir().unwrap();
        let port = opts.port.unwrap_or_else(free_port);
        let controller_port = free_port();
        let advertised = opts.advertised_port.unwrap_or(port);
        let data = dir.path().join("data");
        let props = dir.path().join("server.properties");
        let (mut listeners, mut advertised_listeners) = (
            format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"),
            format!("PLAINTEXT://127.0.0.1:{advertised}"),
        );
        let (mut sasl_ssl_port, mut ca, mut sasl_props) = (None, None, String::new());
        if !opts.scram_users.is_empty() {
            let p = free_port();
            let tls = TestCa::new(dir.path());
            // A PEM keystore: the unencrypted PKCS#8 key, then the certificate chain.
            let keystore = dir.path().join("keystore.pem");
            let key = std::fs::read_to_string(&tls.server_key).unwrap();
            let cert = std::fs::read_to_string(&tls.server_cert).unwrap();
            std::fs::write(&keystore, format!("{key}{cert}")).unwrap();
            listeners.push_str(&format!(",SASL_SSL://127.0.0.1:{p}"));
            advertised_listeners.push_str(&format!(",SASL_SSL://127.0.0.1:{p}"));
            sasl_props = format!(
                "sasl.enabled.mechanisms=SCRAM-SHA-512\n\
                 listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
                 org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
                 listener.name.sasl_ssl.ssl.keystore.type=PEM\n\
                 listener.name.sasl_ssl.ssl.keystore.location={}\n",
                keystore.display()
            );
            sasl_ssl_port = Some(p);
            ca = Some(tls.ca);
        }
        std::fs::write(
            &props,
            format!(
                "process.roles=broker,controller\n\
                 node.id=1\n\
                 controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}\n\
                 listeners={listeners}\n\
                 advertised.listeners={advertised_listeners}\n\
                 controller.listener.names=CONTROLLER\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL\n\
                 {sasl_props}\
                 log.dirs={}\n\
                 num.partitions=1\n\
                 auto.create.topics.enable={}\n\
                 offsets.topic.replication.factor=1\n\
                 share.coordinator.state.topic.replication.factor=1\n\
                 share.coordinator.state.topic.min.isr=1\n\
                 transaction.state.log.replication.factor=1\n\
                 transaction.state.log.min.isr=1\n\
                 group.initial.rebalance.delay.ms=0\n\
                 log.retention.ms=-1\n\
                 {}",
                data.display(),
                opts.auto_create_topics,
                opts.extra_properties
            ),
        )
        .unwrap();
        let log4j = dir.path().join("log4j2.properties");
        std::fs::write(
            &log4j,
            "status = warn\n\
             appender.out.type = Console\n\
             appender.out.name = out\n\
             appender.out.layout.type = PatternLayout\n\
             appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
             rootLogger.level = INFO\n\
             rootLogger.appenderRef.out.ref = out\n",
        )
        .unwrap();
        let log_prop = format!("-Dlog4j2.configurationFile={}", log4j.display());
        // log.retention.ms=-1: Outpost stamps each message with its record's source time, and
        // the fixtures' avalanche warnings and TLE are from 2023. With Kafka's default 7-day
        // retention the broker deletes such segments at its first retention check, 30 s after
        // start, and a test reading later finds them gone.

        // The storage must be formatted before the first start (KRaft); a short-lived JVM.
        let format_log = dir.path().join("format.log");
        let mut format = Command::new(java());
        format
            .args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", &log_prop, "-cp", &classpath(&lib)])
            .args(["kafka.tools.StorageTool", "format", &format!("--cluster-id={}", kafka_cluster_id()), "-c"])
            .arg(&props)
            .arg("--standalone");
        for (user, password) in &opts.scram_users {
            format.args(["--add-scram", &format!("SCRAM-SHA-512=[name={user},password={password}]")]);
        }
        let out = format.output().expect("java runs");
        std::fs::write(&format_log, [&out.stdout[..], &out.stderr[..]].concat()).unwrap();
        assert!(out.status.success(), "kafka-storage format failed:\n{}", tail(&format_log, 40));

        let server_log = dir.path().join("server.log");
        let mut cmd = Command::new(java());
        cmd.args(["-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true", &log_prop])
            .args(["-cp", &classpath(&lib), "kafka.Kafka"])
            .arg(&props);
        let mut jvm = Jvm::spawn(cmd, server_log.clone());
        // Logged once the broker has registered with the controller and been unfenced.
        wait_ready(&mut jvm, "Kafka", KAFKA_START_SECS, &format_log, || {
            let ready = file_contains(&server_log, "Kafka Server started");
            async move { ready }
        })
        .await;
        let startup = started.elapsed();
        eprintln!("Apache Kafka on 127.0.0.1:{port} (advertised {advertised}) ready in {:.1} s", startup.as_secs_f64());
        ApacheKafka { _jvm: jvm, lib, port, sasl_ssl_port, ca, dir }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Every `compresscodec` of the record batches stored for `topic`, read from the broker's
    /// segment files with Kafka's own kafka.tools.DumpLogSegments.
    pub fn stored_codecs(&self, topic: &str) -> BTreeSet<String> {
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(self.data_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.rsplit_once('-').is_some_and(|(t, p)| t == topic && p.parse::<u32>().is_ok()) {
                for f in std::fs::read_dir(&path).unwrap() {
                    let f = f.unwrap().path();
                    if f.extension().is_some_and(|e| e == "log") {
                        segments.push(f);
                    }
                }
            }
        }
        assert!(!segments.is_empty(), "no segment of {topic} in {}", self.data_dir().display());
        let files = segments.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(",");
        let out = Command::new(java())
            .args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", &classpath(&self.lib)])
            .args(["kafka.tools.DumpLogSegments", "--files", &files])
            .output()
            .expect("java runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "DumpLogSegments failed: {}", String::from_utf8_lossy(&out.stderr));
        text.split("compresscodec: ")
            .skip(1)
            .map(|s| s.split_whitespace().next().unwrap_or_default().to_owned())
            .collect()
    }
}

#[derive(Clone, Debug, Default)]
pub struct CassandraOpts {
    /// PasswordAuthenticator and CassandraAuthorizer (superuser cassandra/cassandra).
    pub password_auth: bool,
    /// Client-to-node TLS only (not optional), with a certificate from a test CA (PEM, through
    /// Cassandra's PEMBasedSslContextFactory).
    pub client_tls: bool,
    /// `commitlog_sync: batch`: a write is acknowledged only once its commit log is on disk, so a
    /// killed node keeps every acknowledged write (the default, periodic, syncs every 10 s).
    pub durable_commitlog: bool,
    /// The node's listen, RPC and CQL address: a loopback alias such as 127.0.0.2 for a cluster
    /// on one machine (Linux routes all of 127.0.0.0/8 to lo); 127.0.0.1 when None.
    pub address: Option<String>,
    /// The (CQL, storage) ports; picked free when None. A cluster on loopback aliases gives every
    /// node the same pair, each on its own address, as on separate machines.
    pub ports: Option<(u16, u16)>,
    /// The seed list (`host:storage_port`, comma-separated); the node itself when None.
    pub seeds: Option<String>,
    /// The node's one token (Murmur3); 0 when None. Every node of a cluster needs its own.
    pub initial_token: Option<String>,
}

/// One Apache Cassandra 5.0 node on 127.0.0.1 or `CassandraOpts::address` (SimpleSnitch, one
/// token), CQL on `port`.
pub struct Cassandra {
    /// Killed on drop, before `dir` is removed.
    _jvm: Jvm,
    /// The address it listens on (gossip and CQL).
    pub host: String,
    pub port: u16,
    /// The CA that signed the node's certificate, with `client_tls`.
    pub ca: Option<PathBuf>,
    pub opts: CassandraOpts,
    dir: tempfile::TempDir,
}

impl Cassandra {
    pub async fn start(opts: CassandraOpts) -> Cassandra {
        let started = Instant::now();
        let lib = server_lib("OUTPOST_CASSANDRA_LIB", "cassandra", "cassandra.version");
        let dir = tempfile::Builder::new().prefix("outpost-cassandra-").tempdir().unwrap();
        let d = dir.path();
        let host = opts.address.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
        let (port, storage_port) = opts.ports.unwrap_or_else(|| (free_port(), free_port()));
        let seeds = opts.seeds.clone().unwrap_or_else(|| format!("{host}:{storage_port}"));
        let token = opts.initial_token.clone().unwrap_or_else(|| "0".to_owned());
        let (authenticator, authorizer) = if opts.password_auth {
            ("PasswordAuthenticator", "CassandraAuthorizer")
        } else {
            ("AllowAllAuthenticator", "AllowAllAuthorizer")
        };
        let (mut tls_yaml, mut ca) = (String::new(), None);
        if opts.client_tls {
            let tls = TestCa::new(d);
            let keystore = d.join("keystore.pem");
            let key = std::fs::read_to_string(&tls.server_key).unwrap();
            let cert = std::fs::read_to_string(&tls.server_cert).unwrap();
            std::fs::write(&keystore, format!("{key}{cert}")).unwrap();
            tls_yaml = format!(
                "client_encryption_options:\n  enabled: true\n  optional: false\n  require_client_auth: false\n  \
                 ssl_context_factory:\n    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory\n  \
                 keystore: {}\n",
                keystore.display()
            );
            ca = Some(tls.ca);
        }
        let commitlog = if opts.durable_commitlog {
            "commitlog_sync: batch\n"
        } else {
            "commitlog_sync: periodic\ncommitlog_sync_period: 10000ms\n"
        };
        let yaml = d.join("cassandra.yaml");
        std::fs::write(
            &yaml,
            format!(
                "cluster_name: outpost-it\n\
                 num_tokens: 1\n\
                 initial_token: {token}\n\
                 partitioner: org.apache.cassandra.dht.Murmur3Partitioner\n\
                 auto_bootstrap: false\n\
                 {commitlog}\
                 seed_provider:\n  - class_name: org.apache.cassandra.locator.SimpleSeedProvider\n    parameters:\n      - seeds: \"{seeds}\"\n\
                 listen_address: {host}\n\
                 rpc_address: {host}\n\
                 storage_port: {storage_port}\n\
                 native_transport_port: {port}\n\
                 start_native_transport: true\n\
                 endpoint_snitch: SimpleSnitch\n\
                 data_file_directories: [{d}/data]\n\
                 commitlog_directory: {d}/commitlog\n\
                 saved_caches_directory: {d}/saved_caches\n\
                 hints_directory: {d}/hints\n\
                 cdc_raw_directory: {d}/cdc_raw\n\
                 authenticator: {authenticator}\n\
                 authorizer: {authorizer}\n\
                 role_manager: CassandraRoleManager\n\
                 disk_access_mode: mmap_index_only\n\
                 {tls_yaml}",
                d = d.display()
            ),
        )
        .unwrap();
        let system_log = d.join("system.log");
        let logback = d.join("logback.xml");
        std::fs::write(
            &logback,
            format!(
                "<configuration>\n  <appender name=\"FILE\" class=\"ch.qos.logback.core.FileAppender\">\n    \
                 <file>{}</file>\n    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>\n  \
                 </appender>\n  <root level=\"INFO\"><appender-ref ref=\"FILE\"/></root>\n</configuration>\n",
                system_log.display()
            ),
        )
        .unwrap();
        let jvm_options = std::fs::read_to_string(repo_file("tests/servers/cassandra/jvm17.options")).unwrap();
        let mut cmd = Command::new(java());
        cmd.args(jvm_options.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')))
            .args(["-Xms1G", "-Xmx1G", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError"])
            .arg(format!("-Dcassandra.config=file://{}", yaml.display()))
            .arg(format!("-Dlogback.configurationFile={}", logback.display()))
            .arg(format!("-Dcassandra.storagedir={}", d.display()))
            .arg(format!("-Dcassandra.logdir={}", d.display()))
            .args(["-Dcassandra-foreground=yes", "-Dcassandra.skip_wait_for_gossip_to_settle=0"])
            .args(["-Dcassandra.superuser_setup_delay_ms=0", "-Djava.awt.headless=true"])
            .args(["-cp", &classpath(&lib), "org.apache.cassandra.service.CassandraDaemon"]);
        let mut jvm = Jvm::spawn(cmd, d.join("stdout.log"));
        // Ready when a CQL session opens (and, with auth on, the default superuser exists).
        let user = opts.password_auth;
        let ca_ref = ca.as_deref();
        let node = format!("{host}:{port}");
        let node_ref = node.as_str();
        wait_ready(&mut jvm, "Cassandra", CASSANDRA_START_SECS, &system_log, || async move {
            if !file_contains(&d.join("system.log"), "Starting listening for CQL clients") {
                return false;
            }
            if let Some(ca) = ca_ref {
                // Over TLS: the Python driver trusts the test CA.
                let out =
                    cql_command(node_ref, user, Some(ca), "SELECT release_version FROM system.local").output().await;
                return out.is_ok_and(|o| o.status.success());
            }
            let mut b = scylla::client::session_builder::SessionBuilder::new().known_node(node_ref);
            if user {
                b = b.user("cassandra", "cassandra");
            }
            b.build().await.is_ok()
        })
        .await;
        let startup = started.elapsed();
        eprintln!("Apache Cassandra on {node} ready in {:.1} s", startup.as_secs_f64());
        Cassandra { _jvm: jvm, host, port, ca, opts, dir }
    }

    pub fn node(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The node's system.log (logback, INFO).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("system.log")).unwrap_or_default()
    }

    /// The rows `cql` returns, as JSON objects, read by the DataStax Python driver
    /// (tests/tools/cql_read.py), as the superuser when password auth is on.
    pub async fn query(&self, cql: &str) -> Vec<Value> {
        let out = cql_command(&self.node(), self.opts.password_auth, self.ca.as_deref(), cql).output().await.unwrap();
        assert!(out.status.success(), "cql_read.py failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

/// tests/tools/cql_read.py running `cql` on the node at `node` (host:port), as the superuser when
/// `superuser`, over TLS trusting `ca` when given.
fn cql_command(node: &str, superuser: bool, ca: Option<&Path>, cql: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"));
    cmd.arg(repo_file("tests/tools/cql_read.py")).arg(node).arg(cql);
    if superuser {
        cmd.args(["--user", "cassandra", "--password", "cassandra"]);
    }
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca);
    }
    cmd.kill_on_drop(true);
    cmd
}

/// cqlsh from the test venv (PyPI's cqlsh, next to the venv's python).
pub fn cqlsh() -> PathBuf {
    home_tool("OUTPOST_PYTHON", "venv/bin/python").with_file_name("cqlsh")
}

// The Cassandra connector tests (tests/it/cassandra_connector.rs): a certificate for chosen
// names, SIGKILL and restart on the same data directory, and query traces.

impl TestCa {
    /// Issues the server certificate again (same key, same CA) for `san`, an openssl
    /// subjectAltName value such as `DNS:localhost`.
    pub fn reissue(&self, san: &str) {
        let dir = self.ca.parent().unwrap();
        std::fs::write(dir.join("san.ext"), format!("subjectAltName={san}\n")).unwrap();
        let out = Command::new("openssl")
            .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"])
            .args(["-days", "2", "-extfile", "san.ext", "-out", "server.pem"])
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl x509: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Cassandra {
    /// SIGKILL: no drain, no flush; the commit log is all that survives.
    pub fn kill9(&mut self) {
        self._jvm.child.kill().unwrap();
        self._jvm.child.wait().unwrap();
    }

    /// Re-issues the node's TLS certificate for `san` (with `client_tls`); read at the next start.
    pub fn reissue_certificate(&self, san: &str) {
        let d = self.dir.path();
        let tls = TestCa { ca: d.join("ca.pem"), server_cert: d.join("server.pem"), server_key: d.join("server.key") };
        tls.reissue(san);
        let key = std::fs::read_to_string(&tls.server_key).unwrap();
        let cert = std::fs::read_to_string(&tls.server_cert).unwrap();
        std::fs::write(d.join("keystore.pem"), format!("{key}{cert}")).unwrap();
    }

    /// Starts the node again on the same directory and ports (after `kill9`); returns once a
    /// CQL session opens.
    pub async fn restart(&mut self) {
        let started = Instant::now();
        let _ = self._jvm.child.kill();
        let _ = self._jvm.child.wait();
        let d = self.dir.path().to_owned();
        let system_log = d.join("system.log");
        let offset = std::fs::metadata(&system_log).map(|m| m.len() as usize).unwrap_or(0);
        let lib = server_lib("OUTPOST_CASSANDRA_LIB", "cassandra", "cassandra.version");
        let jvm_options = std::fs::read_to_string(repo_file("tests/servers/cassandra/jvm17.options")).unwrap();
        let mut cmd = Command::new(java());
        cmd.args(jvm_options.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')))
            .args(["-Xms1G", "-Xmx1G", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError"])
            .arg(format!("-Dcassandra.config=file://{}", d.join("cassandra.yaml").display()))
            .arg(format!("-Dlogback.configurationFile={}", d.join("logback.xml").display()))
            .arg(format!("-Dcassandra.storagedir={}", d.display()))
            .arg(format!("-Dcassandra.logdir={}", d.display()))
            .args(["-Dcassandra-foreground=yes", "-Dcassandra.skip_wait_for_gossip_to_settle=0"])
            .args(["-Dcassandra.superuser_setup_delay_ms=0", "-Djava.awt.headless=true"])
            .args(["-cp", &classpath(&lib), "org.apache.cassandra.service.CassandraDaemon"]);
        self._jvm = Jvm::spawn(cmd, d.join("stdout.log"));
        let (node, user, ca) = (self.node(), self.opts.password_auth, self.ca.clone());
        let log = system_log.clone();
        wait_ready(&mut self._jvm, "Cassandra (restart)", CASSANDRA_START_SECS, &system_log, || {
            let (log, ca, node) = (log.clone(), ca.clone(), node.clone());
            async move {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if !text.get(offset..).is_some_and(|t| t.contains("Starting listening for CQL clients")) {
                    return false;
                }
                let out =
                    cql_command(&node, user, ca.as_deref(), "SELECT release_version FROM system.local").output().await;
                out.is_ok_and(|o| o.status.success())
            }
        })
        .await;
        eprintln!("Apache Cassandra on {} restarted in {:.1} s", self.node(), started.elapsed().as_secs_f64());
    }

    /// The events of the trace of `cql` (run unpaged by tests/tools/cql_read.py --trace), in order.
    pub async fn trace(&self, cql: &str) -> Vec<String> {
        let mut cmd = tokio::process::Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"));
        cmd.arg(repo_file("tests/tools/cql_read.py")).arg(self.node()).arg(cql).arg("--trace").kill_on_drop(true);
        if self.opts.password_auth {
            cmd.args(["--user", "cassandra", "--password", "cassandra"]);
        }
        if let Some(ca) = &self.ca {
            cmd.arg("--ca").arg(ca);
        }
        let out = cmd.output().await.unwrap();
        assert!(out.status.success(), "cql_read.py --trace failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
    }
}

impl TestCa {
    /// A test CA and a server certificate for `san` (an openssl subjectAltName list such as
    /// `DNS:kafka.other.invalid`), files prefixed with `prefix` in `dir`.
    pub fn for_names(dir: &Path, prefix: &str, san: &str) -> TestCa {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let f = |name: &str| format!("{prefix}{name}");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        let (ca, ca_key) = (f("ca.pem"), f("ca.key"));
        let (key, csr, cert, ext) = (f("server.key"), f("server.csr"), f("server.pem"), f("san.ext"));
        openssl(
            &[
                &["req", "-x509", "-subj", "/CN=outpost other test CA", "-days", "2"][..],
                &ec,
                &["-keyout", &ca_key, "-out", &ca],
            ]
            .concat(),
        );
        openssl(&[&["req", "-subj", "/CN=other"][..], &ec, &["-keyout", &key, "-out", &csr]].concat());
        std::fs::write(dir.join(&ext), format!("subjectAltName={san}\n")).unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
        TestCa { ca: dir.join(ca), server_cert: dir.join(cert), server_key: dir.join(key) }
    }
}

/// tests/tools/kafka_admin.py: topics and ACLs made on the broker at 127.0.0.1:`port` by an
/// independent admin client (confluent-kafka), as the PLAINTEXT listener's super user.
pub async fn kafka_admin(port: u16, args: &[&str]) {
    let out = tokio::process::Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"))
        .arg(repo_file("tests/tools/kafka_admin.py"))
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "kafka_admin.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

impl ApacheKafka {
    /// The broker's ApiVersions answer as `(api key, min, max)`, read with kafka-python (the
    /// broker's installed jars do not include Kafka's command-line tools).
    pub async fn api_versions(&self) -> Vec<(i16, i16, i16)> {
        let script = "import sys\nfrom kafka.client_async import KafkaClient\n\
                      c = KafkaClient(bootstrap_servers=sys.argv[1])\nc.poll(timeout_ms=5000)\n\
                      v = c.get_api_versions()\nc.close()\n\
                      [print(k, lo, hi) for k, (lo, hi) in sorted(v.items())]\n";
        let out = tokio::process::Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"))
            .args(["-c", script])
            .arg(format!("127.0.0.1:{}", self.port))
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "ApiVersions by kafka-python failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let v: Vec<i16> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                (v.len() == 3).then(|| (v[0], v[1], v[2]))
            })
            .collect()
    }
}

//! Secrets and addresses (issue 15): a mistyped secret is refused without echoing it, commands
//! that do not serve the web need no web password, and configured host names stay out of every
//! status, metric and stored record.

use crate::helpers::*;
use serde_json::Value;
use std::process::Command;

fn outpost(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).envs(envs.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const SECRET_KEYS: [(&str, &str); 5] = [
    ("web", "password"),
    ("email", "password"),
    ("kafka", "sasl_password"),
    ("mqtt", "password"),
    ("cassandra", "password"),
];

/// Every secret key with every kind of non-string value, and syntax errors on a secret's line:
/// `check-config` and `run` exit 2 naming the key, and the value is nowhere in their output.
#[test]
fn a_mistyped_secret_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outpost.toml");
    let cfg = path.to_str().unwrap();
    let mut cases = Vec::new();
    for (section, key) in SECRET_KEYS {
        for value in ["918273645", "[918273645, 2]", "{ x = 918273645 }", "9182.73645", "918273645e0"] {
            cases.push((section, key, format!("{key} = {value}"), "must be a string"));
        }
        cases.push((section, key, format!("{key} = true"), "must be a string"));
        // toml's Display of a parse error quotes the source line; the loader must not use it.
        cases.push((section, key, format!("{key} = \"pw918273645"), ""));
        cases.push((section, key, format!("{key} = pw918273645"), ""));
        cases.push((section, key, format!("{key} = \"pw918273645\" 918273645"), ""));
    }
    for (section, key, line, says) in cases {
        std::fs::write(&path, format!("[{section}]\n{line}\n")).unwrap();
        for command in ["check-config", "run"] {
            let (code, out, err) = outpost(&[command, "--config", cfg], &[]);
            assert_eq!(code, 2, "{command} with `{line}`: {out}{err}");
            assert!(
                !out.contains("918273") && !err.contains("918273"),
                "{command} shows the value of `{line}`: {out}{err}"
            );
            assert!(err.contains(&format!("{}, line 2", path.display())), "{command} `{line}`: {err}");
            if !says.is_empty() {
                let var = format!("OUTPOST_{section}_{key}").to_ascii_uppercase();
                assert!(err.contains(&format!("key `{section}.{key}`")) && err.contains(says), "{err}");
                assert!(err.contains(&var) && err.contains(&format!("{key}_file")), "how else to give it: {err}");
            }
        }
    }
    // `true` is a word a mistyped password may well be: the message is the same one.
    std::fs::write(&path, "[web]\nusername = \"u\"\npassword = true\n").unwrap();
    let (_, _, err) = outpost(&["check-config", "--config", cfg], &[]);
    assert!(!err.contains("true"), "{err}");
}

/// The Pi's layout: `web.username` in the file, the password only in the service's root-only env
/// file. `outpost status` (run without that file) works: it says the appliance runs and how to
/// see the details, and with the password it shows them; `run` without it refuses (exit 2).
#[tokio::test]
async fn status_needs_no_web_password() {
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fx, dir.path(), "").replace("[web]\n", "[web]\nusername = \"outpost\"\n");
    let password = "pw-in-the-env-file-only";
    let app = Outpost::start_env(dir.path(), &cfg, &[bin()], &[("OUTPOST_WEB_PASSWORD", password.as_ref())]).await;
    let path = app.config_path.to_str().unwrap().to_owned();
    let listen = app.addr.to_string();

    let (code, out, err) = outpost(&["run", "--config", &path], &[("OUTPOST_WEB_LISTEN", "127.0.0.1:0")]);
    assert_eq!(code, 2, "run without the password: {out}{err}");
    assert!(err.contains("web.password is not set"), "{err}");
    let (code, out, err) = outpost(&["check-config", "--config", &path], &[]);
    assert_eq!(code, 0, "check-config without the password: {err}");
    assert!(err.contains("warning") && err.contains("web.password is not set"), "{err}");
    assert!(out.contains("username = \"outpost\""), "{out}");

    let env = [("OUTPOST_WEB_LISTEN", listen.as_str())];
    let (code, out, err) = outpost(&["status", "--config", &path], &env);
    assert_eq!(code, 0, "status without the password: {out}{err}");
    assert!(out.contains("running appliance") && out.contains("health: ok"), "{out}");
    assert!(out.contains("OUTPOST_WEB_PASSWORD"), "says how to see the details: {out}");
    assert!(!out.contains("iss.tle"), "no details without the password: {out}");
    let (code, out, err) = outpost(&["status", "--json", "--config", &path], &env);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["health"]["status"], "ok", "{v}");

    // The commands that need the appliance's data say how to give the password.
    let (code, out, err) = outpost(&["export", "--format", "jsonl", "--kind", "tle", "--config", &path], &env);
    assert_eq!(code, 1, "export without the password: {out}{err}");
    assert!(err.contains("asks for the web password") && err.contains("OUTPOST_WEB_PASSWORD"), "{err}");

    let env = [("OUTPOST_WEB_LISTEN", listen.as_str()), ("OUTPOST_WEB_PASSWORD", password)];
    let (code, out, err) = outpost(&["status", "--json", "--config", &path], &env);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["source"], "running appliance", "{v}");
    assert!(v["store"]["kinds"].is_array(), "{v}");
    assert!(app.stop().await.success());

    // Stopped: the store is read directly, password or not.
    let (code, out, err) = outpost(&["status", "--config", &path], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("appliance not running"), "{out}");
}

/// Every upstream configured with a name that means something (and a URL with a password and a
/// token): the errors they cause reach `/api/status`, `/status`, `/metrics`, `outpost status`
/// and `/healthz` with their roles in place of the names. The log, root-only, keeps the names.
#[tokio::test]
async fn configured_host_names_stay_out_of_the_status() {
    let fx = FixtureServer::start().await;
    let tle_url = fx.url("/tle?key=querytoken918").replace("http://", "http://ada:tok3n918@");
    // An upstream that quotes the request back in its error page.
    fx.script("/tle", vec![Reply::status(500, format!("no TLE for {tle_url}"))]);
    let dir = tempfile::tempdir().unwrap();
    let extra = "
[kafka]
brokers = [\"kafka.secret-corp.invalid:9092\"]
[cassandra]
nodes = [\"cassandra.secret-corp.invalid:9042\"]
[mqtt]
url = \"mqtt://mqtt.secret-corp.invalid:1883\"
[location]
latitude = 59.9
longitude = 10.7
gpsd = \"gpsd.secret-corp.invalid:2947\"
";
    let cfg = config(&fx, dir.path(), extra).replace(&fx.url("/tle"), &tle_url);
    let app = Outpost::start(dir.path(), &cfg).await;
    let sink_error = |s: &Value, name: &str| s["sinks"][name]["last_error"].as_str().map(str::to_owned);
    let s = app
        .wait_for("every upstream to fail", 90, |s| {
            ["kafka", "cassandra", "mqtt"].iter().all(|n| sink_error(s, n).is_some())
                && s["location"]["last_error"].is_string()
                && s["sources"]["iss_tle"]["last_error"].is_string()
        })
        .await;
    eprintln!(
        "errors: kafka {:?}, cassandra {:?}, mqtt {:?}, gpsd {}, tle {}",
        sink_error(&s, "kafka"),
        sink_error(&s, "cassandra"),
        sink_error(&s, "mqtt"),
        s["location"]["last_error"],
        s["sources"]["iss_tle"]["last_error"]
    );
    let leaks = ["secret-corp", "tok3n918", "querytoken918"];
    let shown = |what: &str, text: &str| {
        for leak in leaks {
            assert!(!text.contains(leak), "{what} shows {leak}: {text}");
        }
    };
    for path in ["/api/status", "/status", "/metrics", "/healthz"] {
        let (code, body) = app.get(path).await;
        assert_eq!(code, 200, "{path}: {body}");
        shown(path, &body.to_string());
    }
    let listen = app.addr.to_string();
    for args in [&["status", "--config"][..], &["status", "--json", "--config"][..]] {
        let mut args = args.to_vec();
        args.push(app.config_path.to_str().unwrap());
        let (code, out, err) = outpost(&args, &[("OUTPOST_WEB_LISTEN", &listen)]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("running appliance"), "{out}");
        shown("outpost status", &format!("{out}{err}"));
    }
    // An unresolvable node is a connection error, retried, not a refusal of the schema.
    let cassandra = sink_error(&s, "cassandra").unwrap();
    assert!(cassandra.contains("resolve") && !cassandra.contains("schema"), "{cassandra}");
    assert!(app.log().contains("secret-corp"), "the log names the hosts it could not reach");
    assert!(app.stop().await.success());
}

/// Sources configured with passwords and tokens in their URLs: one unreachable, two answering
/// 500 with a body that quotes their URL back. Neither secret is in the log (JSON, and text at
/// debug with every library's lines, stdout and stderr) nor in `/api/status` or `/status`; the
/// log still names the host and quotes the echoed URL without them.
#[tokio::test]
async fn no_url_secret_in_the_log() {
    let fx = FixtureServer::start().await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let with_secrets = |url: String, user: &str| url.replace("http://", &format!("http://{user}:{user}-pw918@"));
    let tle_url = with_secrets(fx.url("/tle?key=tle-token918"), "tle");
    let nve_url = with_secrets(fx.url("/nve"), "nve");
    let position_url = with_secrets(format!("http://127.0.0.1:{closed_port}/iss-now.json?token=pos-token918"), "pos");
    fx.script("/tle", vec![Reply::status(500, format!("no TLE for {tle_url}"))]);
    fx.generate("/nve", move |_| Reply::status(500, format!("{{\"error\": \"bad request to {nve_url}\"}}")));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fx, dir.path(), "")
        .replace(&fx.url("/tle"), &tle_url)
        .replace(&fx.url("/nve"), &with_secrets(fx.url("/nve"), "nve"))
        .replace(&fx.url("/iss-now.json"), &position_url);
    let leaks = ["pw918", "token918"];
    let assert_clean = |what: &str, text: &str| {
        for leak in leaks {
            assert!(!text.contains(leak), "{what} shows {leak}:\n{text}");
        }
    };

    let app = Outpost::start(dir.path(), &cfg).await;
    let failed = |s: &Value, source: &str| s["sources"][source]["last_error"].is_string();
    app.wait_for("every source to fail", 60, |s| ["iss_tle", "varsom", "iss_position"].iter().all(|n| failed(s, n)))
        .await;
    for path in ["/api/status", "/status"] {
        let (code, body) = app.get(path).await;
        assert_eq!(code, 200, "{path}");
        assert_clean(path, &body.to_string());
    }
    let mut launched = app.into_launched();
    launched.child.start_kill().unwrap();
    let json_log = launched.every_line().await.join("\n");
    assert_clean("the JSON log", &json_log);
    assert!(json_log.contains("no TLE for http://tle:***@127.0.0.1:"), "the echo, host kept: {json_log}");
    assert!(json_log.contains("/tle?…"), "the echoed query is cut: {json_log}");

    // The text log, at debug for every crate (reqwest, hyper, rustls), on stderr and stdout.
    let config_path = dir.path().join("outpost.toml");
    let mut child = tokio::process::Command::new(bin())
        .args(["run", "--config"])
        .arg(&config_path)
        .env("OUTPOST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stderr.take().unwrap()));
    let mut text_log = Vec::new();
    let sources_rejected = async {
        let mut seen = std::collections::BTreeSet::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            // The TLE source waits out `tle_refresh_h` after the first run's attempt.
            for source in ["varsom", "iss_position"] {
                if line.contains("rejected") && line.contains(source) {
                    seen.insert(source);
                }
            }
            text_log.push(line);
            if seen.len() == 2 {
                return true;
            }
        }
        false
    };
    let both = tokio::time::timeout(std::time::Duration::from_secs(60), sources_rejected).await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let text_log = text_log.join("\n");
    assert!(matches!(both, Ok(true)), "both sources' rejections in the text log:\n{text_log}");
    assert_clean("the text log", &text_log);
    assert_clean(
        "stdout and the rest of stderr",
        &format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    );
    assert!(text_log.contains("bad request to http://nve:***@127.0.0.1:"), "{text_log}");
}

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
    assert!(app.log().contains("secret-corp"), "the log names the hosts it could not reach");
    assert!(app.stop().await.success());
}

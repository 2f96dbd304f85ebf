//! Configuration: the shipped `junebug.toml`, `JUNEBUG_*` overrides, precedence, and errors that
//! are one line naming the key and where its value came from.
//!
//! Tests go through `load_from` with an explicit environment (never the process's) and always
//! pass a file, so the `junebug.toml` of the current directory is never read by accident.
use std::path::{Path, PathBuf};
use std::process::Command;

use junebug::config::{load_from, CliOverrides, Config, ConfigError, LogFormat, LogLevel};
use serde_json::{json, Value};

/// The `junebug.toml` at the repository root.
fn shipped_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("junebug.toml")
}

/// A temp dir holding `junebug.toml` with `text`; keep the dir alive while using the path.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("junebug.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Loads `toml` (as the `-c` file) with the environment `pairs` and the other flags of `cli`.
fn load(toml: &str, pairs: &[(&str, &str)], cli: CliOverrides) -> Result<Config, ConfigError> {
    let (_dir, path) = config_file(toml);
    let cli = CliOverrides {
        config_file: Some(path),
        ..cli
    };
    load_from(&cli, env(pairs))
}

/// Every leaf key of `value` as a dotted path, with its value.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (name, v) in map {
                let key = match prefix {
                    "" => name.clone(),
                    _ => format!("{prefix}.{name}"),
                };
                flatten(&key, v, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}

fn all_keys() -> Vec<String> {
    let mut leaves = Vec::new();
    flatten(
        "",
        &serde_json::to_value(Config::default()).expect("json"),
        &mut leaves,
    );
    leaves.into_iter().map(|(key, _)| key).collect()
}

fn set(json: &mut Value, key: &str, new: Value) {
    let mut slot = json;
    for part in key.split('.') {
        slot = &mut slot[part];
    }
    *slot = new;
}

/// The error's message is a single line that contains every one of `parts`.
fn assert_one_line(error: &ConfigError, parts: &[&str]) {
    let text = error.to_string();
    assert!(!text.contains('\n'), "not one line: {text:?}");
    for part in parts {
        assert!(text.contains(part), "{text:?} does not mention {part:?}");
    }
}

/// The shipped junebug.toml is exactly the defaults (cf. vector's test_generate_config).
#[test]
fn shipped_junebug_toml_is_the_defaults() {
    let cli = CliOverrides {
        config_file: Some(shipped_toml()),
        ..CliOverrides::default()
    };
    assert_eq!(load_from(&cli, env(&[])).expect("loads"), Config::default());
    Config::default().validate().expect("defaults are valid");
}

/// Every option appears in the shipped junebug.toml (unset ones commented out), with the name
/// of its environment variable.
#[test]
fn shipped_junebug_toml_documents_every_option() {
    let text = std::fs::read_to_string(shipped_toml()).expect("junebug.toml");
    for key in all_keys() {
        let name = key.rsplit('.').next().unwrap_or(&key);
        let assigned = text.lines().any(|line| {
            let line = line.trim_start_matches('#').trim();
            line.starts_with(&format!("{name} ="))
        });
        assert!(assigned, "junebug.toml does not show `{key}`");
        let var = format!("JUNEBUG_{}", key.replace('.', "__").to_uppercase());
        assert!(text.contains(&var), "junebug.toml does not mention {var}");
    }
}

/// With an empty file and no environment, every option has its default.
#[test]
fn nothing_set_gives_the_defaults() {
    assert_eq!(
        load("", &[], CliOverrides::default()).expect("loads"),
        Config::default()
    );
}

/// Every option, top-level and nested, can be set by its JUNEBUG_* variable (and the table
/// must cover them all, so a new option cannot forget its override).
#[test]
fn every_option_is_overridable_by_a_junebug_variable() {
    let table: &[(&str, &str, Value)] = &[
        ("JUNEBUG_INTERFACE", "0.0.0.0", json!("0.0.0.0")),
        ("JUNEBUG_PORT", "8081", json!(8081)),
        (
            "JUNEBUG_LOGFILE",
            "/var/log/junebug.log",
            json!("/var/log/junebug.log"),
        ),
        ("JUNEBUG_LOG_FORMAT", "json", json!("json")),
        ("JUNEBUG_LOG_LEVEL", "debug", json!("debug")),
        ("JUNEBUG_DATA_DIR", "/srv/junebug", json!("/srv/junebug")),
        ("JUNEBUG_LOGGING_PATH", "/srv/logs", json!("/srv/logs")),
        ("JUNEBUG_LOG_ROTATE_SIZE", "2000", json!(2000)),
        ("JUNEBUG_MAX_LOG_FILES", "0", json!(0)),
        ("JUNEBUG_MAX_LOGS", "50", json!(50)),
        ("JUNEBUG_INBOUND_MESSAGE_TTL", "60", json!(60)),
        ("JUNEBUG_OUTBOUND_MESSAGE_TTL", "3600", json!(3600)),
        ("JUNEBUG_ALLOW_EXPIRED_REPLIES", "true", json!(true)),
        ("JUNEBUG_METRIC_WINDOW", "2.5", json!(2.5)),
        ("JUNEBUG_MAX_BODY_SIZE", "4096", json!(4096)),
        ("JUNEBUG_CALLBACK_TIMEOUT", "3", json!(3.0)),
        ("JUNEBUG_SUPERVISOR__ARBITERS", "4", json!(4)),
        (
            "JUNEBUG_SUPERVISOR__RESTART_BACKOFF_INITIAL",
            "0.5",
            json!(0.5),
        ),
        ("JUNEBUG_SUPERVISOR__RESTART_BACKOFF_MAX", "60", json!(60.0)),
        (
            "JUNEBUG_REDIS__URL",
            "redis://r:6379/1",
            json!("redis://r:6379/1"),
        ),
        ("JUNEBUG_REDIS__KEY_PREFIX", "jb:", json!("jb:")),
        (
            "JUNEBUG_AMQP__URL",
            "amqp://a:5672/%2f",
            json!("amqp://a:5672/%2f"),
        ),
        ("JUNEBUG_AMQP__QUEUE_PREFIX", "jb.", json!("jb.")),
        ("JUNEBUG_HEALTH__STUCK_AFTER", "5", json!(5.0)),
        ("JUNEBUG_WEBHOOKS__PORT", "8081", json!(8081)),
        ("JUNEBUG_WEBHOOKS__INTERFACE", "0.0.0.0", json!("0.0.0.0")),
        ("JUNEBUG_CALLBACKS__MAX_ATTEMPTS", "3", json!(3)),
        ("JUNEBUG_CALLBACKS__MAX_AGE", "60", json!(60.0)),
        ("JUNEBUG_CALLBACKS__RETRY_INITIAL", "0.5", json!(0.5)),
        ("JUNEBUG_CALLBACKS__RETRY_MAX", "100", json!(100.0)),
        ("JUNEBUG_CALLBACKS__MAX_PER_DESTINATION", "4", json!(4)),
        ("JUNEBUG_CALLBACKS__MAX_PER_CHANNEL", "3", json!(3)),
        ("JUNEBUG_NODE_ID", "node-a", json!("node-a")),
        ("JUNEBUG_DELIVERY_REPORT_HOLD", "2.5", json!(2.5)),
    ];
    // The two production URLs are only valid together: each is tested with the other set.
    let partner = |var: &str| match var {
        "JUNEBUG_REDIS__URL" => Some(("JUNEBUG_AMQP__URL", "amqp://x/", "amqp.url")),
        "JUNEBUG_AMQP__URL" => Some(("JUNEBUG_REDIS__URL", "redis://x/", "redis.url")),
        _ => None,
    };
    let key_of = |var: &str| {
        var.trim_start_matches("JUNEBUG_")
            .to_lowercase()
            .replace("__", ".")
    };
    let mut covered: Vec<String> = table.iter().map(|(var, _, _)| key_of(var)).collect();
    let mut keys = all_keys();
    covered.sort();
    keys.sort();
    assert_eq!(covered, keys, "the table must list every option");

    let defaults = serde_json::to_value(Config::default()).expect("json");
    for (var, value, expected) in table {
        let key = key_of(var);
        let mut pairs = vec![(*var, *value)];
        let mut want = defaults.clone();
        if let Some((other, other_value, other_key)) = partner(var) {
            pairs.push((other, other_value));
            set(&mut want, other_key, json!(other_value));
        }
        let config = load("", &pairs, CliOverrides::default())
            .unwrap_or_else(|e| panic!("{var}={value}: {e}"));
        set(&mut want, &key, expected.clone());
        assert_ne!(
            want, defaults,
            "{var}: pick a value that differs from the default"
        );
        assert_eq!(
            serde_json::to_value(&config).expect("json"),
            want,
            "{var}={value}"
        );
    }
}

/// Values that look like numbers stay exactly as written in string options (the `config`
/// crate's `try_parsing` would turn `007` into `7`).
#[test]
fn numeric_looking_variables_stay_strings() {
    let config = load(
        "",
        &[
            ("JUNEBUG_INTERFACE", "127.0.0.1"),
            ("JUNEBUG_LOGFILE", "007"),
            ("JUNEBUG_DATA_DIR", "1e5"),
            ("JUNEBUG_LOGGING_PATH", "true"),
        ],
        CliOverrides::default(),
    )
    .expect("loads");
    assert_eq!(config.interface, "127.0.0.1");
    assert_eq!(config.logfile, Some(PathBuf::from("007")));
    assert_eq!(config.data_dir, PathBuf::from("1e5"));
    assert_eq!(config.logging_path, PathBuf::from("true"));
}

/// Variable names are case-insensitive; others, and empty values, are ignored.
#[test]
fn variable_names_and_empty_values() {
    let config = load(
        "",
        &[
            ("junebug_port", "9000"),
            ("JUNEBUG_INTERFACE", ""),
            ("PORT", "1"),
            ("JUNEBUGPORT", "2"),
            ("JUNEBUG_LOG_LEVEL", "WARN"),
        ],
        CliOverrides::default(),
    )
    .expect("loads");
    assert_eq!(config.port, 9000);
    assert_eq!(config.interface, "localhost");
    assert_eq!(config.log_level, LogLevel::Warning);
}

/// CLI flags beat JUNEBUG_* variables, which beat the file, which beats the defaults.
#[test]
fn precedence_is_cli_then_environment_then_file_then_defaults() {
    let toml = r#"
        interface = "file-host"
        port = 1000
        data_dir = "file-data"
        logging_path = "file-logs"
        log_format = "text"
    "#;
    let pairs = [
        ("JUNEBUG_PORT", "2000"),
        ("JUNEBUG_DATA_DIR", "env-data"),
        ("JUNEBUG_LOGGING_PATH", "env-logs"),
    ];
    let cli = CliOverrides {
        port: Some(3000),
        logging_path: Some(PathBuf::from("cli-logs")),
        ..CliOverrides::default()
    };
    let config = load(toml, &pairs, cli).expect("loads");
    assert_eq!(config.port, 3000);
    assert_eq!(config.logging_path, PathBuf::from("cli-logs"));
    assert_eq!(config.data_dir, PathBuf::from("env-data"));
    assert_eq!(config.interface, "file-host");
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(config.max_logs, Config::default().max_logs);

    let cli = CliOverrides {
        interface: Some("cli-host".to_owned()),
        logfile: Some(PathBuf::from("cli.log")),
        data_dir: Some(PathBuf::from("cli-data")),
        ..CliOverrides::default()
    };
    let config = load(toml, &pairs, cli).expect("loads");
    assert_eq!(config.interface, "cli-host");
    assert_eq!(config.logfile, Some(PathBuf::from("cli.log")));
    assert_eq!(config.data_dir, PathBuf::from("cli-data"));
}

/// A nested variable changes one option of a table the file sets, keeping the others.
#[test]
fn nested_variable_merges_into_the_file_table() {
    let toml = "[supervisor]\narbiters = 3\nrestart_backoff_max = 60.0\n";
    let config = load(
        toml,
        &[("JUNEBUG_SUPERVISOR__ARBITERS", "4")],
        CliOverrides::default(),
    )
    .expect("loads");
    assert_eq!(config.supervisor.arbiters, 4);
    assert_eq!(config.supervisor.restart_backoff_max, 60.0);
    assert_eq!(config.arbiter_count(), 4);
}

/// A bad value in the file: one line naming the key and the file.
#[test]
fn bad_value_in_file_names_key_and_file() {
    let cases = [
        ("port = \"abc\"", "port"),
        ("port = 70000", "port"),
        ("port = -1", "port"),
        ("port = 8080.5", "port"),
        ("port = true", "port"),
        ("interface = 127", "interface"),
        ("log_level = \"loud\"", "log_level"),
        ("log_format = \"xml\"", "log_format"),
        ("allow_expired_replies = 1", "allow_expired_replies"),
        ("metric_window = \"fast\"", "metric_window"),
        ("supervisor = 3", "supervisor"),
        ("[supervisor]\narbiters = \"many\"", "supervisor.arbiters"),
    ];
    for (toml, key) in cases {
        let (_dir, path) = config_file(toml);
        let cli = CliOverrides {
            config_file: Some(path.clone()),
            ..CliOverrides::default()
        };
        let error = load_from(&cli, env(&[])).expect_err(toml);
        assert_eq!(error.key(), Some(key), "{toml}: {error}");
        let file = path.display().to_string();
        assert_one_line(&error, &[&format!("key '{key}'"), &file]);
    }
    let error = load("port = \"abc\"", &[], CliOverrides::default()).expect_err("bad port");
    assert_one_line(&error, &["key 'port'", "invalid type: string \"abc\""]);
}

/// A bad value in a variable: one line naming the key and the variable.
#[test]
fn bad_value_in_environment_names_key_and_variable() {
    let cases = [
        ("JUNEBUG_PORT", "abc", "port"),
        ("JUNEBUG_PORT", "-5", "port"),
        ("JUNEBUG_PORT", "99999", "port"),
        ("JUNEBUG_PORT", "yes", "port"),
        (
            "JUNEBUG_ALLOW_EXPIRED_REPLIES",
            "maybe",
            "allow_expired_replies",
        ),
        ("JUNEBUG_METRIC_WINDOW", "fast", "metric_window"),
        ("JUNEBUG_LOG_LEVEL", "loud", "log_level"),
        ("JUNEBUG_SUPERVISOR__ARBITERS", "x", "supervisor.arbiters"),
    ];
    for (var, value, key) in cases {
        // The file sets the same key validly: the variable's value is the one reported.
        let toml = "port = 1234\n[supervisor]\narbiters = 2\n";
        let error = load(toml, &[(var, value)], CliOverrides::default()).expect_err(var);
        assert_eq!(error.key(), Some(key), "{var}={value}: {error}");
        assert_one_line(&error, &[&format!("key '{key}'"), var]);
    }
}

/// Unknown keys, in the file or the environment, are rejected by name.
#[test]
fn unknown_keys_are_rejected_by_name() {
    for (toml, key) in [
        ("prot = 8080", "prot"),
        ("[supervisor]\narbitres = 2", "supervisor.arbitres"),
        ("[redis]\nhost = \"localhost\"", "redis.host"),
    ] {
        let (_dir, path) = config_file(toml);
        let cli = CliOverrides {
            config_file: Some(path.clone()),
            ..CliOverrides::default()
        };
        let error = load_from(&cli, env(&[])).expect_err(toml);
        assert!(matches!(error, ConfigError::UnknownKey { .. }), "{error}");
        assert_eq!(error.key(), Some(key));
        let file = path.display().to_string();
        assert_one_line(&error, &["unknown key", &format!("'{key}'"), &file]);
    }
    for (var, key) in [
        ("JUNEBUG_PROT", "prot"),
        ("JUNEBUG_SUPERVISOR__ARBITRES", "supervisor.arbitres"),
        ("JUNEBUG_LOG__LEVEL", "log.level"),
    ] {
        let error = load("", &[(var, "1")], CliOverrides::default()).expect_err(var);
        assert_eq!(error.key(), Some(key), "{error}");
        assert_one_line(&error, &["unknown key", &format!("'{key}'"), var]);
    }
}

/// `-c` with a file that does not exist is an error naming the path.
#[test]
fn missing_config_file_names_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nope.toml");
    let cli = CliOverrides {
        config_file: Some(path.clone()),
        ..CliOverrides::default()
    };
    let error = load_from(&cli, env(&[])).expect_err("missing file");
    assert!(matches!(error, ConfigError::ReadFile { .. }), "{error}");
    assert_one_line(&error, &[&path.display().to_string()]);
}

/// A TOML syntax error is one line naming the file and the position.
#[test]
fn syntax_error_is_one_line_naming_the_file() {
    let (_dir, path) = config_file("port = 80\nport abc\n");
    let cli = CliOverrides {
        config_file: Some(path.clone()),
        ..CliOverrides::default()
    };
    let error = load_from(&cli, env(&[])).expect_err("syntax error");
    assert_one_line(&error, &[&path.display().to_string(), "line 2"]);
}

/// `validate` rejects what the types allow but the daemon cannot use, naming the key.
#[test]
fn validate_rejects_unusable_values() {
    type Change = fn(&mut Config);
    let cases: &[(&str, Change)] = &[
        ("metric_window", |c| c.metric_window = 0.0),
        ("metric_window", |c| c.metric_window = -1.0),
        ("metric_window", |c| c.metric_window = f64::NAN),
        ("callback_timeout", |c| c.callback_timeout = 0.0),
        ("callback_timeout", |c| c.callback_timeout = f64::INFINITY),
        ("supervisor.restart_backoff_initial", |c| {
            c.supervisor.restart_backoff_initial = 0.0
        }),
        ("supervisor.restart_backoff_max", |c| {
            c.supervisor.restart_backoff_initial = 5.0;
            c.supervisor.restart_backoff_max = 1.0;
        }),
        ("interface", |c| c.interface.clear()),
        ("logfile", |c| c.logfile = Some(PathBuf::new())),
        ("data_dir", |c| c.data_dir = PathBuf::new()),
        ("logging_path", |c| c.logging_path = PathBuf::new()),
        ("log_rotate_size", |c| c.log_rotate_size = 0),
        ("max_logs", |c| c.max_logs = 0),
        ("inbound_message_ttl", |c| c.inbound_message_ttl = 0),
        ("outbound_message_ttl", |c| c.outbound_message_ttl = 0),
        ("max_body_size", |c| c.max_body_size = 0),
    ];
    for (key, change) in cases {
        let mut config = Config::default();
        change(&mut config);
        let error = config.validate().expect_err(key);
        assert_eq!(error.key(), Some(*key), "{error}");
        assert_one_line(&error, &[&format!("key '{key}'")]);
    }
    let mut config = Config {
        max_log_files: 0, // unlimited
        port: 0,          // any free port
        ..Config::default()
    };
    config.supervisor.restart_backoff_max = config.supervisor.restart_backoff_initial;
    config.validate().expect("valid");
}

/// Rule violations found while loading say where the value came from.
#[test]
fn rule_violations_name_their_source() {
    let (_dir, path) = config_file("metric_window = 0\n");
    let cli = CliOverrides {
        config_file: Some(path.clone()),
        ..CliOverrides::default()
    };
    let error = load_from(&cli, env(&[])).expect_err("metric_window 0");
    assert_one_line(
        &error,
        &["key 'metric_window'", &path.display().to_string()],
    );

    let pairs = [("JUNEBUG_REDIS__URL", "redis://127.0.0.1/")];
    let error = load("", &pairs, CliOverrides::default()).expect_err("redis without amqp");
    assert_one_line(&error, &["key 'amqp.url'", "both Redis and RabbitMQ"]);
    let pairs = [("JUNEBUG_AMQP__URL", "amqp://127.0.0.1/")];
    let error = load("", &pairs, CliOverrides::default()).expect_err("amqp without redis");
    assert_one_line(&error, &["key 'redis.url'", "both Redis and RabbitMQ"]);

    let pairs = [("JUNEBUG_SUPERVISOR__RESTART_BACKOFF_MAX", "0.01")];
    let error = load("", &pairs, CliOverrides::default()).expect_err("max < initial");
    assert_one_line(
        &error,
        &[
            "key 'supervisor.restart_backoff_max'",
            "JUNEBUG_SUPERVISOR__RESTART_BACKOFF_MAX",
        ],
    );

    let cli = CliOverrides {
        interface: Some(String::new()),
        ..CliOverrides::default()
    };
    let error = load("", &[("JUNEBUG_INTERFACE", "x")], cli).expect_err("empty -i");
    assert_one_line(&error, &["key 'interface'", "--interface"]);
}

/// `arbiters = 0` means one per core, but at least 2.
#[test]
fn arbiter_count_resolves_zero() {
    let mut config = Config::default();
    assert!(config.arbiter_count() >= 2);
    config.supervisor.arbiters = 1;
    assert_eq!(config.arbiter_count(), 1);
}

fn junebug() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_junebug"));
    command.env_clear();
    command
}

/// The daemon refuses a bad config file with exit code 2 and one stderr line naming the key.
#[test]
fn binary_exits_2_on_a_bad_config_file() {
    let (_dir, path) = config_file("port = \"abc\"\n");
    let output = junebug().arg("-c").arg(&path).output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("junebug: "), "{stderr}");
    assert!(stderr.contains("'port'"), "{stderr}");
}

/// Without `-c`, the daemon reads ./junebug.toml.
#[test]
fn binary_reads_junebug_toml_in_the_current_directory() {
    let (dir, _path) = config_file("[supervisor]\narbiters = \"many\"\n");
    let output = junebug().current_dir(dir.path()).output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("'supervisor.arbiters'"), "{stderr}");
    assert!(stderr.contains("junebug.toml"), "{stderr}");
}

/// JUNEBUG_* variables reach the binary, and a missing `-c` file is named.
#[test]
fn binary_reports_environment_and_missing_file() {
    let output = junebug()
        .args(["-c", "/nonexistent/junebug.toml"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/junebug.toml"), "{stderr}");

    let (_dir, path) = config_file("");
    let output = junebug()
        .arg("-c")
        .arg(&path)
        .env("JUNEBUG_PORT", "abc")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JUNEBUG_PORT"), "{stderr}");
}

/// `--version` prints the package version; `--help` lists the original `jb` flags.
#[test]
fn binary_version_and_help() {
    let output = junebug().arg("--version").output().expect("runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.trim(),
        format!("junebug {}", env!("CARGO_PKG_VERSION"))
    );

    let output = junebug().arg("--help").output().expect("runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--config",
        "--interface",
        "--port",
        "--logfile",
        "--logging-path",
        "--data-dir",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}: {stdout}");
    }
}

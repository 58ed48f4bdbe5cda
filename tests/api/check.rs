//! `switchboard check`: the settings validated as start-up would, without connecting to
//! anything; exit 0 or 2, and what is wrong said with the file, the line and a caret.

use std::process::Output;

/// The packaged settings, with `extra` before them (top-level keys) and `after` them (tables).
fn settings(extra: &str, after: &str) -> std::path::PathBuf {
    let packaged = include_str!("../../scripts/deb/switchboard.toml");
    let path = std::env::temp_dir().join(format!("switchboard-check-{}.toml", ulid::Ulid::new()));
    std::fs::write(&path, format!("{extra}\n{packaged}\n{after}\n")).unwrap();
    path
}

fn check(path: &std::path::Path, json: bool) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.arg("--config").arg(path);
    if json {
        cmd.args(["--log-format", "json"]);
    }
    // The environment must not add settings of its own.
    for var in [
        "SWITCHBOARD_REDIS_URL",
        "SWITCHBOARD_DATABASE_URL",
        "SWITCHBOARD_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("check").output().unwrap()
}

/// Valid settings exit 0; each kind of mistake exits 2 and names what is wrong: a TOML error
/// with the file, the line and a caret under it; a Redis URL of another scheme; a timing past
/// a year. With JSON logs the refusal is one JSON object.
#[test]
fn check_validates_settings_as_start_up_would() {
    let good = settings("", "");
    let out = check(&good, false);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("settings valid"));

    let name = |p: &std::path::Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let broken = settings("", "[limits\nx = 1");
    let out = check(&broken, false);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&name(&broken)), "names the file: {err}");
    assert!(
        err.contains("TOML parse error at line"),
        "names the line: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.trim_start().starts_with('|') && l.contains('^')),
        "a caret under the mistake: {err}"
    );

    for (file, field) in [
        (settings("redis_url = \"http://x\"", ""), "redis_url"),
        (
            settings("", "[timing]\nheartbeat_secs = 1e300"),
            "timing.heartbeat_secs",
        ),
    ] {
        let out = check(&file, false);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{field}: {err}");
        assert!(err.contains(field), "{field}: {err}");

        let out = check(&file, true);
        assert_eq!(out.status.code(), Some(2));
        let line: serde_json::Value = serde_json::from_slice(&out.stderr)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(line["level"], "ERROR", "{line}");
        assert!(line["error"].as_str().unwrap().contains(field), "{line}");
        std::fs::remove_file(&file).unwrap();
    }
    std::fs::remove_file(&good).unwrap();
    std::fs::remove_file(&broken).unwrap();
}

//! Command-line behaviour.

use crate::support::decoder::Decoder;

#[test]
fn help_and_version() {
    let o = Decoder::new().arg("--help").run();
    assert!(o.status.success());
    let help = String::from_utf8(o.stdout).unwrap();
    assert!(help.contains("--decryption-keys-path"), "{help}");
    let o = Decoder::new().arg("--version").run();
    assert!(o.status.success());
    assert!(String::from_utf8(o.stdout)
        .unwrap()
        .starts_with("ctd-decoder "));
}

#[test]
fn unknown_arguments_are_one_line_usage_errors() {
    let o = Decoder::new().arg("--frobnicate").run();
    assert_eq!(o.status.code(), Some(2));
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", o.stderr);
    assert!(
        lines[0].contains("--frobnicate") && lines[0].contains("--help"),
        "{}",
        lines[0]
    );
}

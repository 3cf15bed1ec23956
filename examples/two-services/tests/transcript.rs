//! The example runs to the end with every expectation met.

#[test]
fn every_expectation_is_met() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_two-services"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches("\nok  ").count(), 5, "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

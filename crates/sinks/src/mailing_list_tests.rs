//! Tests of `builtin:mailing-list`'s own parts.

use super::*;

#[test]
fn a_bad_lists_file_names_its_line() {
    let text = "[[list]]\naddress = \"team@example.org\"\nposting = \"everyone\"\n";
    let e = parse("lists.toml", text).expect_err("bad posting");
    assert!(e.starts_with("lists.toml:3:"), "{e}");
    let ok = parse(
        "lists.toml",
        "[[list]]\naddress = \"t@example.org\"\nmembers = [\"a@x.test\"]\n",
    )
    .expect("good");
    assert_eq!(ok[0].posting, Posting::Members);
    assert!(ok[0].may_post("A@x.test") && !ok[0].may_post("b@x.test"));
}

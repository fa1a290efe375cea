//! A filter that is a long flat chain is refused with exit 2 and the limit, not a crash.

mod common;

use common::*;

#[test]
fn a_ten_thousand_term_sum_exits_2_with_the_limit() {
    let chain = format!("{} > 0", vec!["1"; 10_000].join("+"));
    let o = wiremap(&["kfl", "check", &chain]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("wiremap: error: invalid filter at 1:")
            && first.contains(&format!(
                "expression too deep: more than {} levels",
                wiremap_kfl::MAX_HEIGHT
            )),
        "{first}"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn a_four_thousand_address_allow_list_is_accepted() {
    // 4,000 alternatives, about 108 KB: a command-line argument holds at most 128 KiB.
    let list = (0..4_000)
        .map(|i| format!("src.ip == \"10.{}.{}.5\"", i / 256, i % 256))
        .collect::<Vec<_>>()
        .join(" || ");
    let o = wiremap(&["kfl", "check", &list]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), list);
}

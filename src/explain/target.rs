//! Naming a class on the command line: an exact label or a unique part of one.

/// Why a wanted class does not name exactly one label.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error("no {what} label is or contains {wanted:?}")]
    Unknown { wanted: String, what: String },
    #[error(
        "{wanted:?} is part of {} {what} labels ({}{}); give the whole label",
        matches.len(),
        matches.iter().take(8).map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", "),
        if matches.len() > 8 { ", ..." } else { "" }
    )]
    Ambiguous {
        wanted: String,
        what: String,
        matches: Vec<String>,
    },
}

/// The index of the label equal to `wanted` (ignoring case), else of the one label that
/// contains it. `what` names the label set in errors ("ImageNet", "head").
pub fn find_label(labels: &[String], wanted: &str, what: &str) -> Result<usize, TargetError> {
    let w = wanted.trim().to_lowercase();
    if let Some(i) = labels.iter().position(|l| l.to_lowercase() == w) {
        return Ok(i);
    }
    let hits: Vec<usize> = (0..labels.len())
        .filter(|&i| !w.is_empty() && labels[i].to_lowercase().contains(&w))
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(TargetError::Unknown {
            wanted: wanted.to_string(),
            what: what.to_string(),
        }),
        many => Err(TargetError::Ambiguous {
            wanted: wanted.to_string(),
            what: what.to_string(),
            matches: many.iter().map(|&i| labels[i].clone()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_unique_part() {
        let labels: Vec<String> = ["tabby", "tiger cat", "tiger", "zebra"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(find_label(&labels, "Tiger", "ImageNet"), Ok(2));
        assert_eq!(find_label(&labels, "zeb", "ImageNet"), Ok(3));
        assert_eq!(
            find_label(&labels, "tig", "ImageNet")
                .unwrap_err()
                .to_string(),
            "\"tig\" is part of 2 ImageNet labels (\"tiger cat\", \"tiger\"); give the whole label"
        );
        assert_eq!(
            find_label(&labels, "unicorn", "head")
                .unwrap_err()
                .to_string(),
            "no head label is or contains \"unicorn\""
        );
    }
}

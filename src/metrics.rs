//! Evaluation numbers for `edge-tl eval`: accuracy, top-5 accuracy, per-class precision and
//! recall, and the confusion matrix (rows = true label, columns = predicted label).

use serde::Serialize;

use crate::predict::{argmax, top_k};

/// Precision and recall of one label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassReport {
    pub label: String,
    /// Of the pictures predicted as this label, the share that were (NaN-free: 0 if none).
    pub precision: f64,
    /// Of the pictures of this label, the share predicted as it.
    pub recall: f64,
    /// Pictures of this label in the test set.
    pub support: usize,
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub n: usize,
    pub accuracy: f64,
    pub top5_accuracy: f64,
    pub labels: Vec<String>,
    pub per_class: Vec<ClassReport>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Builds the report from (true label, class probabilities) pairs.
pub fn evaluate(labels: &[String], results: &[(usize, Vec<f32>)]) -> EvalReport {
    let c = labels.len();
    let mut confusion = vec![vec![0usize; c]; c];
    let mut top5 = 0;
    for (truth, probs) in results {
        confusion[*truth][argmax(probs)] += 1;
        if top_k(probs, labels, 5).iter().any(|r| r.index == *truth) {
            top5 += 1;
        }
    }
    let n = results.len();
    let correct: usize = (0..c).map(|i| confusion[i][i]).sum();
    EvalReport {
        n,
        accuracy: ratio(correct, n),
        top5_accuracy: ratio(top5, n),
        labels: labels.to_vec(),
        per_class: per_class(labels, &confusion),
        confusion,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Precision and recall of each label from a confusion matrix (`confusion[true][predicted]`).
pub fn per_class(labels: &[String], confusion: &[Vec<usize>]) -> Vec<ClassReport> {
    let c = labels.len();
    (0..c)
        .map(|i| {
            let predicted: usize = (0..c).map(|t| confusion[t][i]).sum();
            let support: usize = confusion[i].iter().sum();
            ClassReport {
                label: labels[i].clone(),
                precision: ratio(confusion[i][i], predicted),
                recall: ratio(confusion[i][i], support),
                support,
            }
        })
        .collect()
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "accuracy {:.2}% ({} pictures), top-5 accuracy {:.2}%",
            100.0 * self.accuracy,
            self.n,
            100.0 * self.top5_accuracy
        )?;
        let width = self
            .labels
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(f, "\n{:width$}  precision  recall  support", "label")?;
        for r in &self.per_class {
            writeln!(
                f,
                "{:width$}  {:>8.1}%  {:>5.1}%  {:>7}",
                r.label,
                100.0 * r.precision,
                100.0 * r.recall,
                r.support
            )?;
        }
        writeln!(
            f,
            "\nconfusion (rows: true label, columns: predicted, in label order)"
        )?;
        for (label, row) in self.labels.iter().zip(&self.confusion) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>4}")).collect();
            writeln!(f, "{label:width$} {}", cells.join(""))?;
        }
        Ok(())
    }
}

/// Nearest-rank percentile (`q` in 0..1) of the values; NaN when empty. Sorts `values`.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&mut v, 0.5), 3.0);
        assert_eq!(percentile(&mut v, 0.9), 5.0);
        assert!(percentile(&mut [], 0.5).is_nan());
    }

    #[test]
    fn counts_precision_recall_and_confusion() {
        let labels: Vec<String> = ["cat", "dog"].map(String::from).to_vec();
        let r = evaluate(
            &labels,
            &[
                (0, vec![0.9, 0.1]),
                (0, vec![0.2, 0.8]),
                (1, vec![0.3, 0.7]),
                (1, vec![0.4, 0.6]),
            ],
        );
        assert_eq!(r.n, 4);
        assert_eq!(r.accuracy, 0.75);
        assert_eq!(r.top5_accuracy, 1.0);
        assert_eq!(r.confusion, vec![vec![1, 1], vec![0, 2]]);
        assert_eq!(r.per_class[0].precision, 1.0);
        assert_eq!(r.per_class[0].recall, 0.5);
        assert!((r.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!(r.to_string().starts_with("accuracy 75.00% (4 pictures)"));
    }
}

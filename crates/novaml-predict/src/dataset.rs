//! The networks' view of the supervised windows that `novaml-features` builds
//! ([`novaml_features::dataset`]: scaled inputs, labels that are the true future values, a
//! chronological split, scalers fit on the training rows): windows copied into the time-major
//! batches the LSTM consumes.

use novaml_features::Windows;

/// Copies windows `idx` of `w` into a time-major batch `[steps][B][features]` and labels
/// `[B][H]`.
pub fn batch(w: &Windows, idx: &[usize], x: &mut Vec<f32>, y: &mut Vec<f32>) {
    let (t_n, f_n, b_n) = (w.steps, w.features, idx.len());
    x.clear();
    x.resize(t_n * b_n * f_n, 0.0);
    y.clear();
    for (b, &s) in idx.iter().enumerate() {
        for t in 0..t_n {
            let src = &w.x[(s * t_n + t) * f_n..(s * t_n + t + 1) * f_n];
            x[(t * b_n + b) * f_n..(t * b_n + b + 1) * f_n].copy_from_slice(src);
        }
        // Inference windows carry no labels.
        if let Some(ys) = w.y.get(s * w.horizon..(s + 1) * w.horizon) {
            y.extend_from_slice(ys);
        }
    }
}

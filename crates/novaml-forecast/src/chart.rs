//! SVG charts of a resource: history, the P10–P90 band, the P50 forecast and the threshold
//! lines. SVG only: text is left to the viewer's fonts, so no font files are needed.

use plotters::prelude::*;

use crate::ForecastError;
use crate::capacity::QuantileForecast;

/// What to draw.
#[derive(Debug)]
pub struct ChartInput<'a> {
    /// Title.
    pub title: &'a str,
    /// History: timestamps (Unix seconds) and values.
    pub history: (&'a [i64], &'a [f64]),
    /// The forecast.
    pub forecast: &'a QuantileForecast,
    /// Horizontal lines: (label, value).
    pub thresholds: &'a [(&'a str, f64)],
}

/// Renders the chart as an SVG document.
pub fn svg(input: &ChartInput<'_>) -> Result<String, ForecastError> {
    let err = |e: &dyn std::fmt::Display| ForecastError::InvalidInput(format!("chart: {e}"));
    let (ts, ys) = input.history;
    let f = input.forecast;
    let n = f.p50.len();
    let t0 = ts.first().copied().unwrap_or(f.start) as f64 / 86_400.0;
    let day = |t: i64| t as f64 / 86_400.0 - t0;
    let t_end = day(f.start + (n as i64 - 1).max(0) * f.step);
    let all = ys
        .iter()
        .chain(&f.p10)
        .chain(&f.p90)
        .chain(input.thresholds.iter().map(|(_, v)| v))
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        return Err(ForecastError::InvalidInput("chart: nothing to draw".into()));
    }
    let pad = (hi - lo).max(1e-9) * 0.05;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (960, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(input.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..t_end.max(1e-9), (lo - pad)..(hi + pad))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("days")
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| err(&e))?;
        let fx = |i: usize| day(f.start + i as i64 * f.step);
        let band: Vec<(f64, f64)> = (0..n)
            .map(|i| (fx(i), f.p90[i]))
            .chain((0..n).rev().map(|i| (fx(i), f.p10[i])))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.18))))
            .map_err(|e| err(&e))?
            .label("P10–P90")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLUE.mix(0.18).filled())
            });
        chart
            .draw_series(LineSeries::new(
                ts.iter().zip(ys).map(|(t, v)| (day(*t), *v)),
                BLACK.stroke_width(1),
            ))
            .map_err(|e| err(&e))?
            .label("history")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
        chart
            .draw_series(LineSeries::new(
                (0..n).map(|i| (fx(i), f.p50[i])),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label("P50")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
        for (i, (label, v)) in input.thresholds.iter().enumerate() {
            let color = if i == 0 { RGBColor(230, 140, 0) } else { RED };
            chart
                .draw_series(LineSeries::new(
                    [(0.0, *v), (t_end, *v)],
                    color.stroke_width(1),
                ))
                .map_err(|e| err(&e))?
                .label(*label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_svg_with_every_part() {
        let ts: Vec<i64> = (0..48).map(|i| i * 3_600).collect();
        let ys: Vec<f64> = (0..48).map(|i| 50.0 + (i % 24) as f64).collect();
        let f = QuantileForecast {
            step: 3_600,
            start: 48 * 3_600,
            p10: vec![45.0; 24],
            p50: vec![55.0; 24],
            p90: vec![65.0; 24],
        };
        let svg = svg(&ChartInput {
            title: "cpu",
            history: (&ts, &ys),
            forecast: &f,
            thresholds: &[("warning 85 %", 85.0), ("critical 95 %", 95.0)],
        })
        .expect("renders");
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for part in [
            "P10–P90",
            "history",
            "P50",
            "warning 85 %",
            "critical 95 %",
            "<polygon",
        ] {
            assert!(svg.contains(part), "missing {part}");
        }
    }
}

//! Brent's root finder (van Wijngaarden-Dekker-Brent, as in Brent 1973 / "zeroin"): bisection's
//! guarantee with inverse quadratic interpolation's speed. Used for rises, sets, culminations (roots
//! of the elevation rate) and the edges of visibility.

/// A root of `f` in `[a, b]`, to within `tol`, given `fa = f(a)` and `fb = f(b)` of opposite signs
/// (or one of them zero). Never evaluates outside `[a, b]`; gives up after 100 evaluations (far more
/// than a smooth function needs) and returns the best estimate.
pub(super) fn brent<E>(
    mut f: impl FnMut(f64) -> Result<f64, E>,
    a: f64,
    fa: f64,
    b: f64,
    fb: f64,
    tol: f64,
) -> Result<f64, E> {
    if fa == 0.0 {
        return Ok(a);
    }
    if fb == 0.0 {
        return Ok(b);
    }
    let (mut a, mut fa, mut b, mut fb) = (a, fa, b, fb);
    let (mut c, mut fc) = (b, fb);
    let mut d = b - a;
    let mut e = d;
    for _ in 0..100 {
        if (fb > 0.0) == (fc > 0.0) {
            // Keep the root bracketed between b and c.
            c = a;
            fc = fa;
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol1 = 2.0 * f64::EPSILON * b.abs() + 0.5 * tol;
        let xm = 0.5 * (c - b);
        if xm.abs() <= tol1 || fb == 0.0 {
            return Ok(b);
        }
        if e.abs() >= tol1 && fa.abs() > fb.abs() {
            // Inverse quadratic interpolation, or the secant when only two points are distinct.
            let s = fb / fa;
            let (mut p, mut q) = if a == c {
                (2.0 * xm * s, 1.0 - s)
            } else {
                let q = fa / fc;
                let r = fb / fc;
                (s * (2.0 * xm * q * (q - r) - (b - a) * (r - 1.0)), (q - 1.0) * (r - 1.0) * (s - 1.0))
            };
            if p > 0.0 {
                q = -q;
            }
            p = p.abs();
            let min1 = 3.0 * xm * q - (tol1 * q).abs();
            let min2 = (e * q).abs();
            if 2.0 * p < min1.min(min2) {
                e = d;
                d = p / q;
            } else {
                d = xm;
                e = d;
            }
        } else {
            d = xm;
            e = d;
        }
        a = b;
        fa = fb;
        b += if d.abs() > tol1 { d } else { tol1.copysign(xm) };
        fb = f(b)?;
        if !fb.is_finite() {
            // Nothing sensible to interpolate: return the midpoint of what is known.
            return Ok(0.5 * (a + c));
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::brent;

    #[test]
    fn brent_finds_roots_within_tolerance() {
        let f = |x: f64| Ok::<f64, ()>(x * x * x - 2.0 * x - 5.0);
        let root = brent(f, 2.0, f(2.0).unwrap(), 3.0, f(3.0).unwrap(), 1e-12).unwrap();
        assert!((root - 2.094_551_481_542_326_5).abs() < 1e-11, "{root}");
        let g = |x: f64| Ok::<f64, ()>(x.cos() - x);
        let root = brent(g, 0.0, 1.0, 1.0, g(1.0).unwrap(), 1e-9).unwrap();
        assert!((root - 0.739_085_133_215_160_6).abs() < 1e-9, "{root}");
        // Reversed bracket and a zero at an end.
        let h = |x: f64| Ok::<f64, ()>(x - 1.0);
        assert_eq!(brent(h, 3.0, 2.0, 1.0, 0.0, 1e-9).unwrap(), 1.0);
        let root = brent(h, 3.0, 2.0, -1.0, -2.0, 1e-9).unwrap();
        assert!((root - 1.0).abs() < 1e-9);
    }
}

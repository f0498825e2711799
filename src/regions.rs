//! Where NVE's 46 avalanche forecast regions (3001-3046) are: the map places them, the weather
//! source samples points inside them.
//!
//! NVE publishes the region polygons only as GIS downloads, not through the warning API or any
//! package registry, so the map marks each region at a hand-placed point inside it (about 0.2°
//! accurate, from the regions' published names and extents). A region without a point here is
//! listed but not drawn.

/// `(region id, latitude, longitude)`.
const CENTRES: &[(u32, f64, f64)] = &[
    (3001, 78.7, 21.0),   // Svalbard øst
    (3002, 79.0, 12.5),   // Svalbard vest
    (3003, 78.1, 15.6),   // Nordenskiöld Land
    (3004, 77.0, 16.2),   // Svalbard sør
    (3005, 70.0, 29.0),   // Øst-Finnmark
    (3006, 70.7, 25.0),   // Finnmarkskysten
    (3007, 70.2, 22.6),   // Vest-Finnmark
    (3008, 69.3, 24.6),   // Finnmarksvidda
    (3009, 69.9, 21.4),   // Nord-Troms
    (3010, 69.6, 20.2),   // Lyngen
    (3011, 69.6, 18.7),   // Tromsø
    (3012, 68.8, 17.0),   // Sør-Troms
    (3013, 69.0, 19.4),   // Indre Troms
    (3014, 68.4, 14.6),   // Lofoten og Vesterålen
    (3015, 68.3, 17.3),   // Ofoten
    (3016, 67.3, 15.4),   // Salten
    (3017, 66.7, 14.0),   // Svartisen
    (3018, 65.8, 13.4),   // Helgeland
    (3019, 64.4, 12.6),   // Nord-Trøndelag
    (3020, 63.0, 10.9),   // Sør-Trøndelag
    (3021, 63.1, 8.2),    // Ytre Nordmøre
    (3022, 62.7, 9.3),    // Trollheimen
    (3023, 62.4, 7.9),    // Romsdal
    (3024, 62.2, 6.6),    // Sunnmøre
    (3025, 62.0, 9.3),    // Nord-Gudbrandsdalen
    (3026, 61.6, 5.4),    // Ytre Fjordane
    (3027, 61.7, 6.8),    // Indre Fjordane
    (3028, 61.6, 8.4),    // Jotunheimen
    (3029, 61.2, 7.4),    // Indre Sogn
    (3030, 61.1, 5.6),    // Ytre Sogn
    (3031, 60.7, 6.5),    // Voss
    (3032, 60.6, 8.3),    // Hallingdal
    (3033, 60.2, 5.4),    // Hordalandskysten
    (3034, 60.2, 6.9),    // Hardanger
    (3035, 59.6, 7.8),    // Vest-Telemark
    (3036, 59.0, 5.9),    // Rogalandskysten
    (3037, 59.1, 6.9),    // Heiane
    (3038, 58.5, 7.6),    // Agder sør
    (3039, 59.2, 8.9),    // Telemark sør
    (3040, 59.3, 10.1),   // Vestfold
    (3041, 59.9, 9.6),    // Buskerud sør
    (3042, 60.8, 10.1),   // Oppland sør
    (3043, 61.5, 11.6),   // Hedmark
    (3044, 60.1, 11.1),   // Akershus
    (3045, 59.95, 10.75), // Oslo
    (3046, 59.3, 11.3),   // Østfold
];

pub fn centre(region: u32) -> Option<(f64, f64)> {
    CENTRES.iter().find(|(id, _, _)| *id == region).map(|&(_, lat, lon)| (lat, lon))
}

/// How far (degrees of latitude) the weather's sample points lie from a region's point: about
/// 11 km, well inside regions that are 50-150 km across, wide enough to reach other valleys.
const SAMPLE_RADIUS_DEG: f64 = 0.1;

/// `n` points inside `region` for sampling its weather: its point first, then the others evenly
/// on a ring around it (the east-west offset widened by 1/cos(latitude) so the ring is round on
/// the ground). Rounded to 1e-4 degree so the request URL and the stored points stay short.
pub fn sample_points(region: u32, n: usize) -> Vec<(f64, f64)> {
    let Some((lat, lon)) = centre(region) else { return Vec::new() };
    let round = |v: f64| (v * 1e4).round() / 1e4;
    let ring = n.saturating_sub(1);
    let mut out = Vec::with_capacity(n);
    if n > 0 {
        out.push((lat, lon));
    }
    for k in 0..ring {
        let angle = std::f64::consts::TAU * k as f64 / ring as f64;
        let dlat = SAMPLE_RADIUS_DEG * angle.cos();
        let dlon = SAMPLE_RADIUS_DEG * angle.sin() / lat.to_radians().cos();
        out.push((round(lat + dlat), round(lon + dlon)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_has_one_point_inside_norway_or_svalbard() {
        for id in 3001..=3046 {
            let (lat, lon) = centre(id).unwrap_or_else(|| panic!("region {id} has no point"));
            assert!((57.9..81.0).contains(&lat) && (4.5..31.5).contains(&lon), "{id}: {lat}, {lon}");
        }
        assert_eq!(CENTRES.len(), 46);
        assert!(centre(3047).is_none());
    }

    #[test]
    fn sample_points_start_at_the_region_point_and_stay_near_it() {
        assert!(sample_points(3047, 3).is_empty());
        assert!(sample_points(3022, 0).is_empty());
        assert_eq!(sample_points(3022, 1), vec![(62.7, 9.3)]);
        let points = sample_points(3011, 5);
        assert_eq!(points.len(), 5);
        assert_eq!(points[0], (69.6, 18.7));
        for &(lat, lon) in &points[1..] {
            // About 11 km from the centre, in every direction alike.
            let dy = (lat - 69.6) * 111.2;
            let dx = (lon - 18.7) * 111.2 * 69.6_f64.to_radians().cos();
            let km = (dx * dx + dy * dy).sqrt();
            assert!((10.5..12.0).contains(&km), "{lat},{lon}: {km} km");
        }
        let distinct: std::collections::BTreeSet<String> = points.iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(distinct.len(), 5);
    }
}
